// People: filters, data scopes, role editing.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launch, login, newPage, shot } from '../lib.mjs'

let browser
before(async () => {
  browser = await launch()
})
after(async () => {
  await browser?.close()
})

function peopleResponse(page, pred = () => true) {
  return page.waitForResponse((r) => r.url().includes('/api/v1/people?') && pred(new URL(r.url()).searchParams))
}

async function kindsShown(page) {
  return page.getByTestId('people-table').locator('.el-table__row td:nth-child(3)').allInnerTexts()
}

test('filter by kind and by class', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'admin')
    const first = peopleResponse(page)
    await page.getByTestId('nav-people').click()
    await first
    // Kind: teachers only.
    let res = peopleResponse(page, (q) => q.get('kind') === 'teacher')
    await page.getByTestId('people-kind').click()
    await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: /^教师$/ }).click()
    const teachers = await (await res).json()
    assert.ok(teachers.total > 0 && teachers.items.every((p) => p.kind === 'teacher'), 'only teachers')
    await page.waitForTimeout(200)
    assert.ok((await kindsShown(page)).every((k) => k.trim() === '教师'))
    // Class: the students of one class.
    res = peopleResponse(page, (q) => q.has('class_id'))
    await page.getByTestId('people-kind').hover()
    await page.getByTestId('people-kind').locator('.el-select__clear').click()
    await page.getByTestId('people-class').click()
    await page.locator('.el-select-dropdown:visible .el-select-dropdown__item').first().click()
    const cls = await (await res).json()
    assert.ok(cls.total > 0 && cls.total < 100, `one class has ${cls.total} people`)
    const className = cls.items[0].class?.name
    assert.ok(cls.items.every((p) => p.class?.name === className), 'all in one class')
    // Department (a tree): the people of one department.
    await page.getByTestId('people-class').hover()
    await page.getByTestId('people-class').locator('.el-select__clear').click()
    res = peopleResponse(page, (q) => q.has('department_id') && !q.has('class_id'))
    await page.locator('.el-select[data-testid="people-department"]').click()
    await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: /^信息工程系$/ }).first().click()
    const dept = await (await res).json()
    assert.ok(dept.total > 0 && dept.total < teachers.total + 3000, `department has ${dept.total} people`)
    await shot(page, 'desktop-people-filtered')
  } finally {
    await page.context().close()
  }
})

test('a teacher sees only own classes', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'teacher')
    const res = peopleResponse(page)
    await page.getByTestId('nav-people').click()
    const data = await (await res).json()
    assert.ok(data.total > 0 && data.total < 500, `teacher sees ${data.total} people`)
  } finally {
    await page.context().close()
  }
})

test('an admin edits the roles of a person', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'admin')
    await page.getByTestId('nav-people').click()
    const res = peopleResponse(page, (q) => q.get('q') === '张三')
    await page.getByTestId('people-search').fill('张三')
    await res
    await page.getByTestId('person-name').filter({ hasText: /^张三$/ }).first().click()
    await page.getByTestId('edit-roles').click()
    const drawer = page.getByTestId('person-drawer')
    const box = drawer.locator('.el-checkbox', { hasText: /教务|Academic/ })
    await box.click()
    const put = page.waitForResponse((r) => /\/api\/v1\/people\/\d+\/roles$/.test(r.url()))
    await page.getByTestId('save-roles').click()
    assert.equal((await put).status(), 200)
    await drawer.locator('.el-tag', { hasText: '教务' }).waitFor()
    await shot(page, 'desktop-person-roles')
    // And back.
    await page.getByTestId('edit-roles').click()
    await drawer.locator('.el-checkbox', { hasText: /教务|Academic/ }).click()
    await page.getByTestId('save-roles').click()
    await drawer.locator('.el-tag', { hasText: '教务' }).waitFor({ state: 'detached' })
  } finally {
    await page.context().close()
  }
})

test('log out everywhere ends the other sessions', async () => {
  const a = await newPage(browser)
  const b = await newPage(browser)
  try {
    await login(a, 'training', 'admin')
    await login(b, 'training', 'admin')
    await a.getByTestId('user-menu').click()
    await a.locator('[data-testid="logout-all"]:visible').click()
    await a.locator('.el-message-box .el-button--primary').click()
    await a.getByTestId('login-submit').waitFor()
    const status = await b.evaluate(async () => (await fetch('/api/v1/auth/me')).status)
    assert.equal(status, 401, 'the other session is gone')
    await b.getByTestId('nav-profile').click()
    await b.getByTestId('login-submit').waitFor()
  } finally {
    await a.context().close()
    await b.context().close()
  }
})

test('phone: import and person pages fit the screen', async () => {
  const page = await newPage(browser, { phone: true })
  try {
    await login(page, 'school', 'admin')
    await page.goto('/import')
    await page.getByTestId('import-start').waitFor()
    assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390)
    await shot(page, 'phone-import')
    await page.goto('/people')
    const res = peopleResponse(page, (q) => q.get('q') === 'zs')
    await page.getByTestId('people-search').fill('zs')
    await res
    await page.getByTestId('person-name').filter({ hasText: /^张三$/ }).first().click()
    await page.getByTestId('person-detail-name').waitFor()
    await shot(page, 'phone-person')
  } finally {
    await page.context().close()
  }
})

test('deactivate a person; the inactive filter finds them', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'admin')
    // A person of our own, imported through the API with the page's session.
    const state = await page.evaluate(async () => {
      const csrf = document.cookie.split('; ').find((c) => c.startsWith('xt_csrf='))?.split('=')[1] ?? ''
      const fd = new FormData()
      fd.append('mode', 'all_or_nothing')
      fd.append('file', new Blob(['类型,学号工号,姓名\n职工,E2E0200,停用测试\n'], { type: 'text/csv' }), 'one.csv')
      let imp = await (await fetch('/api/v1/imports/people', { method: 'POST', body: fd, headers: { 'X-CSRF-Token': decodeURIComponent(csrf) } })).json()
      for (let i = 0; i < 100 && !['succeeded', 'rejected', 'failed'].includes(imp.state); i++) {
        await new Promise((r) => setTimeout(r, 200))
        imp = await (await fetch(`/api/v1/imports/${imp.id}`)).json()
      }
      return imp.state
    })
    assert.equal(state, 'succeeded')
    await page.getByTestId('nav-people').click()
    let res = peopleResponse(page, (q) => q.get('q') === '停用测试')
    await page.getByTestId('people-search').fill('停用测试')
    await res
    await page.getByTestId('person-name').filter({ hasText: /^停用测试$/ }).first().click()
    await page.getByTestId('person-deactivate').click()
    const post = page.waitForResponse((r) => /\/api\/v1\/people\/\d+\/deactivate$/.test(r.url()))
    await page.locator('.el-message-box .el-button--primary').click()
    assert.equal((await post).status(), 200)
    await page.getByTestId('person-drawer').getByText(/已停用|Inactive/).first().waitFor()
    await page.keyboard.press('Escape')
    // Active people (the default) no longer include them; inactive ones do.
    res = peopleResponse(page, (q) => q.get('active') === 'false')
    await page.getByTestId('people-active').click()
    await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: /^已停用$/ }).click()
    const inactive = await (await res).json()
    assert.ok(inactive.items.some((p) => p.name === '停用测试' && !p.active), 'found among the inactive')
    const active = await page.evaluate(async () => (await (await fetch('/api/v1/people?q=' + encodeURIComponent('停用测试'))).json()).total)
    assert.equal(active, 0)
  } finally {
    await page.context().close()
  }
})
