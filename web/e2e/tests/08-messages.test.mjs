// The message center: compose → publish → another user sees it live and reads
// it → the sender sees the read; template errors with their line; the inbox
// badge on a phone.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { launch, login, newPage, shot } from '../lib.mjs'

const CLASS = '2024级软件技术1班' // 张三's class; 张建国 is his parent

let browser
before(async () => {
  browser = await launch()
})
after(async () => {
  await browser?.close()
})

/** The unread count the server reports for the page's user. */
async function unreadOf(page) {
  return page.evaluate(async () => (await (await fetch('/api/v1/inbox/unread')).json()).unread)
}

/** The number on the header badge (0 when hidden). */
async function badgeOf(page) {
  const sup = page.locator('[data-testid="inbox-badge"] sup')
  if (!(await sup.isVisible())) return 0
  return Number((await sup.innerText()).trim())
}

async function waitBadge(page, n) {
  await page.waitForFunction(
    (want) => {
      const sup = document.querySelector('[data-testid="inbox-badge"] sup')
      const shown = sup && sup.offsetParent !== null && getComputedStyle(sup).display !== 'none' ? Number(sup.textContent.trim()) : 0
      return shown === want
    },
    n,
    { timeout: 20_000 },
  )
}

/** Calls the API with the page's session (CSRF header included). */
async function apiCall(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const csrf = document.cookie
        .split(';')
        .map((c) => c.trim().split('='))
        .find(([k]) => k === 'xt_csrf')?.[1]
      const r = await fetch(path, {
        method,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': decodeURIComponent(csrf ?? '') },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return { status: r.status, body: await r.json().catch(() => null) }
    },
    { method, path, body },
  )
}

test('compose → publish → the parent sees it live and reads it → the sender sees the read', async () => {
  const admin = await newPage(browser)
  const parent = await newPage(browser)
  const problems = []
  for (const p of [admin, parent]) p.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(parent, 'school', 'parent')
    await parent.getByTestId('inbox-bell').waitFor()
    const before = await unreadOf(parent)
    // The live stream has told the badge the count.
    await waitBadge(parent, before)

    await login(admin, 'school', 'admin')
    await admin.getByTestId('nav-compose').click()
    // Audience: 张三's class, students and their parents.
    const rule = admin.getByTestId('audience-include-rule').first()
    await rule.getByTestId('audience-value').click()
    await admin.keyboard.type(CLASS)
    await admin.locator('.el-select-dropdown__item:visible', { hasText: CLASS }).first().click()
    await admin.keyboard.press('Escape')
    const count = admin.getByTestId('audience-count')
    await count.waitFor()
    const students = Number(await count.innerText())
    assert.ok(students > 0, `the class: ${students}`)
    await rule.getByTestId('audience-who').click()
    await admin.locator('.el-select-dropdown:visible [data-testid="audience-who-both"]').click()
    // The live count follows: the students and their parents.
    await admin.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="audience-count"]')?.textContent) > n,
      students,
    )
    const reach = Number(await count.innerText())

    const title = `E2E 家长会通知 ${Date.now()}`
    await admin.getByTestId('compose-title').fill(title)
    await admin.getByTestId('compose-body').fill('{{ recipient.name }}，您好：\n\n本周五下午 **3 点** 召开家长会。')
    await admin.getByTestId('compose-confirm').click()
    // E-mail too: the demo people have no addresses, so the delivery view
    // lists them as not delivered, with the reason.
    await admin.getByTestId('compose-channel-email').click()
    // An attachment goes with it.
    await admin.getByTestId('compose-file').setInputFiles({
      name: '家长会议程.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('15:00 开场\n15:30 班主任发言\n'),
    })
    await admin.getByTestId('compose-attachment').filter({ hasText: '家长会议程.txt' }).waitFor()
    await admin.getByTestId('compose-preview').click()
    await admin.getByTestId('compose-preview-box').waitFor()
    await shot(admin, 'desktop-compose')
    await admin.getByTestId('compose-publish').click()
    await admin.locator('.el-message-box .el-button--primary').click()
    await admin.waitForURL(/\/messages\/\d+$/)
    await admin.getByTestId('delivery-stats').waitFor()
    assert.match(await admin.getByTestId('message-state').innerText(), /已发布/)

    // The parent's badge goes up without a reload.
    await waitBadge(parent, before + 1)
    assert.equal(await badgeOf(parent), before + 1)
    await shot(parent, 'desktop-inbox-badge')
    await parent.getByTestId('inbox-bell').click()
    const item = parent.getByTestId('inbox-item').filter({ hasText: title })
    await item.waitFor()
    await item.click()
    const body = parent.getByTestId('inbox-body')
    await body.waitFor()
    assert.match(await body.innerText(), /张建国，您好/)
    assert.equal(await body.locator('strong').innerText(), '3 点')
    const att = parent.getByTestId('inbox-detail').locator('a', { hasText: '家长会议程.txt' })
    const href = await att.getAttribute('href')
    const got = await parent.evaluate(async (u) => (await fetch(u)).text(), href)
    assert.match(got, /班主任发言/)
    await parent.getByTestId('inbox-confirm').click()
    await parent.getByTestId('inbox-confirmed').waitFor()
    await shot(parent, 'desktop-inbox-detail')
    await waitBadge(parent, before)

    // The sender's delivery view shows the read (it refreshes itself).
    await admin.waitForFunction(() => Number(document.querySelector('[data-testid="delivery-read"]')?.textContent) >= 1, null, {
      timeout: 20_000,
    })
    assert.equal(Number(await admin.getByTestId('delivery-confirmed').innerText()), 1)
    await admin.getByTestId('recipients-filter-read').click()
    const rows = admin.getByTestId('recipients-table').locator('.el-table__body-wrapper tr')
    await rows.filter({ hasText: '张建国' }).waitFor()
    assert.equal(await rows.count(), 1)
    await admin.getByTestId('chart-channels').locator('canvas').first().waitFor()
    await admin.getByTestId('failures-table').getByText('no email address').first().waitFor()
    await shot(admin, 'desktop-delivery', { fullPage: true })
    // 张建国's timeline: the message arrived, was read and confirmed.
    await rows.filter({ hasText: '张建国' }).click()
    const timeline = admin.getByTestId('timeline')
    await timeline.getByTestId('timeline-event').filter({ hasText: title }).first().waitFor()
    const events = await timeline.getByTestId('timeline-event').filter({ hasText: title }).allInnerTexts()
    for (const want of ['已入收件箱', '已读', '已确认']) {
      assert.ok(events.some((e) => e.includes(want)), `${want} in ${events.join(' | ')}`)
    }
    await shot(admin, 'desktop-recipient-timeline')
    await admin.keyboard.press('Escape')
    await timeline.waitFor({ state: 'hidden' })
    // The recipient list exports as XLSX.
    const download = admin.waitForEvent('download')
    await admin.getByTestId('export-xlsx').click()
    const file = await download
    assert.match(file.suggestedFilename(), /\.xlsx$/)
    const bytes = fs.readFileSync(await file.path())
    assert.equal(bytes.subarray(0, 2).toString(), 'PK', 'an XLSX (zip) file')

    // The history lists it with its read count.
    await admin.getByTestId('nav-messages').click()
    const row = admin.getByTestId('history-table').locator('.el-table__row', { hasText: title })
    await row.waitFor()
    assert.match(await row.innerText(), new RegExp(`1/${reach}`))
    await shot(admin, 'desktop-messages')

    // Withdrawn: the parent's inbox says so.
    await row.click()
    await admin.getByTestId('withdraw').click()
    await admin.locator('.el-message-box .el-button--primary').click()
    await admin.getByTestId('message-state').filter({ hasText: '已撤回' }).waitFor()
    await parent.reload()
    await parent.getByTestId('inbox-item').filter({ hasText: title }).getByTestId('inbox-withdrawn').waitFor()
    assert.deepEqual(problems, [])
  } finally {
    await admin.context().close()
    await parent.context().close()
  }
})

test('a template with an unknown variable is refused with its line', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'admin')
    await page.getByTestId('nav-templates').click()
    await page.getByTestId('template-new').click()
    await page.getByTestId('template-code').fill(`e2e.exam.${Date.now()}`)
    await page.getByTestId('template-name').fill('E2E 考试通知')
    await page.getByTestId('template-title').fill('{{ student.name }} 考试安排')
    await page.getByTestId('template-body').fill('同学好：\n考场：{{ exam_room }}\n请准时参加。')
    await page.getByTestId('template-save').click()
    const error = page.getByTestId('template-body-item').locator('.el-form-item__error')
    await error.waitFor()
    assert.match(await error.innerText(), /第 2 行.*exam_room/)
    await page.locator('[data-testid="template-body-lines"] .bad', { hasText: 'exam_room' }).waitFor()
    await shot(page, 'desktop-template-error')
    // Declared as a caller variable, it saves; the preview fills it in.
    await page.getByTestId('template-variables').click()
    await page.keyboard.type('exam_room')
    await page.keyboard.press('Enter')
    await page.keyboard.press('Escape')
    await page.getByTestId('template-save').click()
    await page.waitForURL(/\/templates\/\d+$/)
    await page.getByTestId('template-versions').locator('.el-table__row').first().waitFor()
    await page.getByTestId('template-preview-title').waitFor()
    await shot(page, 'desktop-template')

    // Compose from it: the caller variable is asked for, the preview fills it in.
    await page.getByTestId('nav-compose').click()
    await page.getByTestId('compose-mode-template').click()
    await page.getByTestId('compose-template').click()
    await page.locator('.el-select-dropdown__item:visible', { hasText: 'E2E 考试通知' }).first().click()
    await page.getByTestId('compose-var-exam_room').fill('实训楼 301')
    await page.getByTestId('compose-preview').click()
    await page.getByTestId('compose-preview-box').getByText('实训楼 301').waitFor()
  } finally {
    await page.context().close()
  }
})

test('compose: what is missing is said beside the field', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'admin')
    await page.getByTestId('nav-compose').click()
    await page.getByTestId('compose-publish').click()
    const titleError = page.locator('.el-form-item.is-error', { has: page.getByTestId('compose-title') }).locator('.el-form-item__error')
    await titleError.waitFor()
    assert.equal((await titleError.innerText()).trim(), '请填写标题')
    const ruleError = page.getByTestId('audience-include-rule').first().locator('.rule-error')
    assert.equal((await ruleError.innerText()).trim(), '请选择班级')
    await shot(page, 'desktop-compose-errors')
  } finally {
    await page.context().close()
  }
})

test('a teacher may address only own classes', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'teacher')
    await page.getByTestId('nav-compose').click()
    const rule = page.getByTestId('audience-include-rule').first()
    const pick = async (name) => {
      await rule.getByTestId('audience-value').click()
      await page.keyboard.type(name)
      await page.locator('.el-select-dropdown__item:visible', { hasText: name }).first().click()
      await page.keyboard.press('Escape')
    }
    // Not the teacher's class: the count says why it cannot be sent.
    await pick('2024级会计1班')
    const refused = page.getByTestId('audience-count-error')
    await refused.waitFor()
    assert.match(await refused.innerText(), /只能向本人所带班级/)
    await shot(page, 'desktop-compose-teacher-refused')
    // The teacher's own class alone: counted.
    await rule.locator('.el-tag__close').first().click()
    await pick(CLASS)
    await page.getByTestId('audience-count').waitFor()
    assert.ok(Number(await page.getByTestId('audience-count').innerText()) > 0)
  } finally {
    await page.context().close()
  }
})

test('phone: the inbox badge goes up live', async () => {
  const admin = await newPage(browser)
  const parent = await newPage(browser, { phone: true })
  try {
    await login(parent, 'school', 'parent')
    const bell = parent.getByTestId('inbox-bell')
    await bell.waitFor()
    assert.ok(await bell.isVisible(), 'the bell is in the phone header')
    const before = await unreadOf(parent)
    await waitBadge(parent, before)

    await login(admin, 'school', 'admin')
    const me = await parent.evaluate(async () => (await (await fetch('/api/v1/auth/me')).json()).id)
    const title = `E2E 手机提醒 ${Date.now()}`
    const draft = await apiCall(admin, 'POST', '/api/v1/messages', {
      kind: 'notice',
      content: { title, body: '明天早上 **8:00** 返校。' },
      channels: ['inapp'],
      audience: { include: [{ type: 'person', value: [me] }] },
    })
    assert.equal(draft.status, 201, JSON.stringify(draft.body))
    const pub = await apiCall(admin, 'POST', `/api/v1/messages/${draft.body.id}/publish`)
    assert.equal(pub.status, 200, JSON.stringify(pub.body))

    await waitBadge(parent, before + 1)
    await shot(parent, 'phone-inbox-badge')
    await bell.click()
    await parent.getByTestId('inbox-item').filter({ hasText: title }).click()
    await parent.getByTestId('inbox-body').waitFor()
    await shot(parent, 'phone-inbox-detail')
    await waitBadge(parent, before)
    await parent.keyboard.press('Escape')
    const width = await parent.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(width <= 390, `inbox is ${width}px wide`)
    // The link a template gets as {{ message.url }} opens the message.
    await parent.goto(`/inbox?message=${draft.body.id}`)
    await parent.getByTestId('inbox-body').getByText('返校').waitFor()
  } finally {
    await admin.context().close()
    await parent.context().close()
  }
})

test('channel settings: save masks the secret; a test send shows what the provider said', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'admin')
    await page.getByTestId('nav-channels').click()
    await page.getByTestId('channel-tab-webhook').click()
    // Nothing listens on port 9: the provider's answer is a connection error.
    await page.getByTestId('channel-webhook-url').fill('http://127.0.0.1:9/hook')
    await page.getByTestId('channel-webhook-secret').fill('e2e-webhook-secret')
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/channels/webhook') && r.request().method() === 'PUT')
    await page.getByTestId('channel-save-webhook').click()
    assert.equal((await saved).status(), 200)
    // The secret comes back masked.
    await page.waitForFunction(
      () => document.querySelector('input[data-testid="channel-webhook-secret"]')?.value === '••••',
    )
    await page.getByTestId('channel-test-webhook').click()
    const result = page.getByTestId('channel-test-result-webhook')
    await result.waitFor({ timeout: 30_000 })
    const text = await result.innerText()
    assert.match(text, /发送失败/)
    assert.ok(text.length > 20, `the provider's answer is shown: ${text}`)
    await shot(page, 'desktop-channels')
  } finally {
    await page.context().close()
  }
})

test('preferences: channels per message type and quiet hours are kept', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'parent')
    await page.getByTestId('nav-preferences').click()
    await page.getByTestId('prefs-type-notice').waitFor()
    await page.waitForLoadState('networkidle')
    // Notices: my own choice, everything but SMS.
    if (!(await page.getByTestId('prefs-notice-sms').isVisible())) await page.getByTestId('prefs-custom-notice').click()
    const sms = page.getByTestId('prefs-notice-sms')
    if (await sms.locator('input').isChecked()) await sms.click()
    await page.getByTestId('prefs-quiet-start').click()
    await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: /^22:00$/ }).last().click()
    await page.waitForTimeout(300)
    await page.getByTestId('prefs-quiet-end').click()
    await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: /^07:00$/ }).last().click()
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/me/preferences') && r.request().method() === 'PUT')
    await page.getByTestId('prefs-save').click()
    assert.equal((await saved).status(), 200)
    const prefs = await page.evaluate(async () => (await fetch('/api/v1/me/preferences')).json())
    assert.equal(prefs.quiet_start, '22:00')
    assert.equal(prefs.quiet_end, '07:00')
    assert.ok(Array.isArray(prefs.channels.notice) && !prefs.channels.notice.includes('sms'), JSON.stringify(prefs))
    await page.reload()
    await page.getByTestId('prefs-notice-email').waitFor()
    assert.equal(await page.getByTestId('prefs-notice-sms').locator('input').isChecked(), false)
    await shot(page, 'desktop-preferences')
  } finally {
    await page.context().close()
  }
})
