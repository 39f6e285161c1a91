// Finds 张三 by name and by pinyin initials on the People page.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launch, login, newPage, shot } from '../lib.mjs'

let browser, page
before(async () => {
  browser = await launch()
  page = await newPage(browser)
  await login(page, 'school', 'admin')
  await page.getByTestId('nav-people').click()
  await page.getByTestId('people-table').locator('.el-table__row').first().waitFor()
})
after(async () => {
  await browser?.close()
})

async function search(q) {
  const input = page.getByTestId('people-search')
  if ((await input.inputValue()) === q) return page.getByTestId('person-name').allInnerTexts()
  const done = page.waitForResponse((r) => r.url().includes('/api/v1/people?') && new URL(r.url()).searchParams.get('q') === q)
  await input.fill(q)
  await done
  await page.waitForTimeout(100)
  return page.getByTestId('person-name').allInnerTexts()
}

test('people list shows the school', async () => {
  const total = await page.getByTestId('people-total').innerText()
  const n = Number(total.replace(/\D/g, ''))
  assert.ok(n > 1000, `expected thousands of people, got "${total}"`)
  await shot(page, 'desktop-people')
})

test('find 张三 by name', async () => {
  const names = await search('张三')
  assert.ok(names.includes('张三'), `names: ${names}`)
})

test('find 张三 by pinyin initials zs', async () => {
  const names = await search('zs')
  assert.ok(names.includes('张三'), `names: ${names}`)
})

test('open 张三 in the detail drawer', async () => {
  await search('张三')
  await page.getByTestId('person-name').filter({ hasText: /^张三$/ }).first().click()
  const detail = page.getByTestId('person-detail-name')
  await detail.waitFor()
  assert.equal((await detail.innerText()).trim(), '张三')
  assert.match(new URL(page.url()).pathname, /^\/people\/\d+$/)
  await shot(page, 'desktop-person')
  await page.keyboard.press('Escape')
})

test('the search and the open person survive a reload', async () => {
  await search('张三')
  await page.getByTestId('person-name').filter({ hasText: /^张三$/ }).first().click()
  await page.getByTestId('person-detail-name').waitFor()
  const url = new URL(page.url())
  assert.equal(url.searchParams.get('q'), '张三')
  await page.reload()
  await page.getByTestId('person-detail-name').waitFor()
  assert.equal(await page.getByTestId('people-search').inputValue(), '张三')
  await page.keyboard.press('Escape')
  await page.waitForURL((u) => u.pathname === '/people')
  assert.equal(new URL(page.url()).searchParams.get('q'), '张三')
})
