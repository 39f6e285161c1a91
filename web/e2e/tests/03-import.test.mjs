// Imports a CSV with one bad row: all-or-nothing imports nothing and shows
// the row's error; valid-rows-only imports the good rows.
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launch, login, newPage, shot } from '../lib.mjs'
import { makeXlsx } from '../xlsx.mjs'

const CSV =
  '\ufeff类型,学号工号,姓名,性别,手机号\n' +
  '职工,E2E0001,导入测试甲,男,13900001001\n' +
  '职工,E2E0002,导入测试乙,女,12345\n' +
  '职工,E2E0003,导入测试丙,女,13900001003\n'

let browser, page
before(async () => {
  browser = await launch()
  page = await newPage(browser)
  await login(page, 'school', 'admin')
})
after(async () => {
  await browser?.close()
})

async function upload(modeTestId) {
  await page.goto('/import')
  await page
    .getByTestId('import-file')
    .locator('input[type=file]')
    .setInputFiles({ name: 'e2e-people.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV, 'utf8') })
  await page.getByTestId(modeTestId).click()
  await page.getByTestId('import-start').click()
  const state = page.locator('[data-testid="import-state"][data-state="succeeded"], [data-testid="import-state"][data-state="rejected"], [data-testid="import-state"][data-state="failed"]')
  await state.waitFor({ timeout: 30_000 })
  return state.getAttribute('data-state')
}

async function count(testId) {
  const text = await page.getByTestId(testId).locator('.el-statistic__content').innerText()
  return Number(text.replace(/[^\d]/g, ''))
}

async function apiPeople(q) {
  return page.evaluate(async (q) => {
    const r = await fetch(`/api/v1/people?q=${encodeURIComponent(q)}&active=all`)
    return r.json()
  }, q)
}

async function errorRows() {
  return page.getByTestId('import-errors').locator('.el-table__body tr').evaluateAll((trs) =>
    trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.innerText.trim())),
  )
}

test('all or nothing: the bad row is reported and nothing is imported', async () => {
  const state = await upload('mode-all')
  assert.equal(state, 'rejected')
  const rows = await errorRows()
  assert.ok(rows.length >= 1, 'error table has rows')
  const bad = rows.find((r) => r[0] === '3')
  assert.ok(bad, `row 3 is reported: ${JSON.stringify(rows)}`)
  assert.match(bad[1], /手机号|phone/i, `column of row 3: ${bad[1]}`)
  assert.ok(!rows.some((r) => r[0] === '2' || r[0] === '4'), 'only the bad row has errors')
  assert.equal(await count('count-created'), 0)
  await shot(page, 'desktop-import-rejected')
  // The error report downloads as CSV.
  const download = page.waitForEvent('download')
  await page.getByTestId('import-download-errors').click()
  const file = await (await download).path()
  const report = fs.readFileSync(file, 'utf8')
  assert.match(report, /^\ufeff?行,列,问题\n3,手机号,/, report)
  const found = await apiPeople('导入测试')
  assert.equal(found.total, 0, 'nothing was imported')
})

test('valid rows only: the good rows are imported', async () => {
  const state = await upload('mode-valid')
  assert.equal(state, 'succeeded')
  assert.equal(await count('count-created'), 2)
  const rows = await errorRows()
  assert.ok(rows.some((r) => r[0] === '3'), 'row 3 still reported')
  await shot(page, 'desktop-import')
  const found = await apiPeople('导入测试')
  assert.deepEqual(found.items.map((p) => p.name).sort(), ['导入测试甲', '导入测试丙'].sort())
})

test('an imported account must change its password on first log-in', async () => {
  const csv =
    '\ufeff类型,学号工号,姓名,用户名,初始密码\n' + '职工,E2E0100,改密测试,e2e_pw,Start@2026x\n'
  await page.goto('/import')
  await page
    .getByTestId('import-file')
    .locator('input[type=file]')
    .setInputFiles({ name: 'e2e-accounts.csv', mimeType: 'text/csv', buffer: Buffer.from(csv, 'utf8') })
  await page.getByTestId('mode-all').click()
  await page.getByTestId('import-start').click()
  await page.locator('[data-testid="import-state"][data-state="succeeded"]').waitFor({ timeout: 30_000 })

  const other = await newPage(browser)
  try {
    await other.goto('/login')
    await other.getByTestId('login-tenant').fill('school')
    await other.getByTestId('login-login').fill('e2e_pw')
    await other.getByTestId('login-password').fill('Start@2026x')
    await other.getByTestId('login-submit').click()
    await other.getByTestId('pw-submit').waitFor()
    assert.equal(new URL(other.url()).pathname, '/change-password')
    // Every other page sends back to the password change.
    await other.goto('/profile')
    await other.getByTestId('pw-submit').waitFor()
    assert.equal(await other.locator('[data-testid="nav"] [data-testid^="nav-"]').count(), 0, 'no navigation before the change')
    await shot(other, 'desktop-change-password')
    await other.getByTestId('pw-current').fill('Start@2026x')
    await other.getByTestId('pw-new').fill('Changed@2026x')
    await other.getByTestId('pw-repeat').fill('Changed@2026x')
    await other.getByTestId('pw-submit').click()
    await other.getByTestId('welcome').waitFor()
  } finally {
    await other.context().close()
  }
})

test('an XLSX file with English headers imports', async () => {
  const xlsx = makeXlsx([
    ['kind', 'number', 'name', 'gender', 'phone', 'tags'],
    ['teacher', 'E2E0300', '表格导入甲', 'female', '13900003001', 'e2e;xlsx'],
    ['staff', 'E2E0301', '表格导入乙', 'male', '13900003002', ''],
  ])
  await page.goto('/import')
  await page.getByTestId('import-file').locator('input[type=file]').setInputFiles({
    name: 'e2e-people.xlsx',
    mimeType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    buffer: xlsx,
  })
  await page.getByTestId('mode-all').click()
  await page.getByTestId('import-start').click()
  const state = page.locator('[data-testid="import-state"][data-state="succeeded"], [data-testid="import-state"][data-state="rejected"], [data-testid="import-state"][data-state="failed"]')
  await state.waitFor({ timeout: 30_000 })
  const errors = (await page.getByTestId('import-errors').count()) ? await errorRows() : []
  assert.equal(await state.getAttribute('data-state'), 'succeeded', JSON.stringify(errors))
  assert.equal(await count('count-created'), 2)
  const found = await apiPeople('表格导入')
  assert.equal(found.total, 2)
  const jia = found.items.find((p) => p.name === '表格导入甲')
  assert.equal(jia.kind, 'teacher')
  assert.deepEqual([...jia.tags].sort(), ['e2e', 'xlsx'])
})
