// Opens each admin page, checks it renders without errors, saves screenshots.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launch, login, newPage, pickOption, shot } from '../lib.mjs'

let browser, page
const problems = []
before(async () => {
  browser = await launch()
  page = await newPage(browser)
  page.on('pageerror', (e) => problems.push(String(e)))
  await page.goto('/login')
  await shot(page, 'desktop-login')
  await login(page, 'school', 'admin')
})
after(async () => {
  await browser?.close()
})

test('home', async () => {
  await page.goto('/')
  await page.getByTestId('welcome').waitFor()
  await shot(page, 'desktop-home')
})

test('roles & permissions', async () => {
  await page.getByTestId('nav-roles').click()
  const rows = page.getByTestId('roles-table').locator('.el-table__body-wrapper tr')
  await rows.first().waitFor()
  assert.ok((await rows.count()) >= 5, 'built-in roles are listed')
  await shot(page, 'desktop-roles')
  // An invalid key is refused; the reason stands beside the field.
  await page.getByTestId('role-create').click()
  await page.getByTestId('role-key').fill('Bad Key!')
  await page.getByTestId('role-name').fill('E2E 查看员')
  await page.getByTestId('role-save').click()
  const fieldError = page.locator('[data-testid="role-dialog"] .el-form-item.is-error .el-form-item__error')
  await fieldError.waitFor()
  assert.ok((await fieldError.innerText()).trim().length > 0)
  await shot(page, 'desktop-role-field-error')
  // A valid custom role is created.
  await page.getByTestId('role-key').fill('e2e_viewer')
  await page.getByTestId('role-name').fill('E2E 查看员')
  await page.locator('[data-testid="role-dialog"] .el-checkbox').first().click()
  await page.getByTestId('role-save').click()
  await page.getByTestId('roles-table').getByText('E2E 查看员').waitFor()
  // Edit it: rename and change the data scope.
  const row = () => page.getByTestId('roles-table').locator('.el-table__body-wrapper tr', { hasText: 'e2e_viewer' })
  await row().getByTestId('role-edit').click()
  await page.getByTestId('role-name').fill('E2E 审核员')
  await page.locator('[data-testid="role-dialog"] .el-select').click()
  await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: /^本部门$/ }).click()
  const patch = page.waitForResponse((r) => /\/api\/v1\/roles\/\d+$/.test(r.url()) && r.request().method() === 'PATCH')
  await page.getByTestId('role-save').click()
  assert.equal((await patch).status(), 200)
  await row().getByText('E2E 审核员').waitFor()
  assert.match(await row().innerText(), /本部门/)
  // Delete it.
  await row().getByTestId('role-delete').click()
  const del = page.waitForResponse((r) => /\/api\/v1\/roles\/\d+$/.test(r.url()) && r.request().method() === 'DELETE')
  await page.locator('.el-message-box .el-button--primary').click()
  assert.equal((await del).status(), 204)
  await row().waitFor({ state: 'detached' })
  // And create it again for the audit trail below.
  await page.getByTestId('role-create').click()
  await page.getByTestId('role-key').fill('e2e_viewer')
  await page.getByTestId('role-name').fill('E2E 查看员')
  await page.locator('[data-testid="role-dialog"] .el-checkbox').first().click()
  await page.getByTestId('role-save').click()
  await page.getByTestId('roles-table').getByText('E2E 查看员').waitFor()
})

test('audit trail and chain verification', async () => {
  await page.getByTestId('nav-audit').click()
  await page.getByTestId('audit-table').locator('.el-table__row').first().waitFor()
  await page.getByTestId('audit-verify').click()
  const result = page.getByTestId('audit-verify-result')
  await result.waitFor()
  assert.ok(await result.evaluate((el) => el.classList.contains('el-alert--success')), await result.innerText())
  await shot(page, 'desktop-audit')
  // Filter: only the role created above.
  await pickOption(page, 'audit-entity', 'audit-entity-role')
  const res = page.waitForResponse((r) => r.url().includes('/api/v1/audit?') && r.url().includes('entity=role'))
  await page.getByTestId('audit-search').click()
  const filtered = await (await res).json()
  assert.ok(filtered.total >= 1 && filtered.items.every((e) => e.entity === 'role'), 'only role entries')
  await page.waitForTimeout(200)
  assert.equal(await page.getByTestId('audit-table').locator('.el-table__row').count(), filtered.items.length)
  await page.getByTestId('audit-table').locator('.el-table__row').first().click()
  await page.getByTestId('audit-diff').waitFor()
  assert.match(await page.getByTestId('audit-diff').innerText(), /e2e_viewer/)
  await shot(page, 'desktop-audit-diff')
  await page.keyboard.press('Escape')
})

test('API tokens: create, shown once, revoke', async () => {
  await page.getByTestId('nav-tokens').click()
  await page.getByTestId('token-create').click()
  await page.getByTestId('token-name').fill('e2e token')
  await page.locator('.el-dialog .el-checkbox').first().click()
  await page.getByTestId('token-save').click()
  const value = page.getByTestId('token-value')
  await value.waitFor()
  assert.ok((await value.inputValue()).length >= 20, 'token is shown')
  await shot(page, 'desktop-token-created')
  await page.keyboard.press('Escape')
  const row = page.getByTestId('tokens-table').locator('.el-table__row', { hasText: 'e2e token' }).first()
  await row.waitFor()
  await shot(page, 'desktop-tokens')
  await row.getByTestId('token-revoke').click()
  await page.locator('.el-message-box .el-button--primary').click()
  await row.getByText(/已吊销|Revoked/).first().waitFor()
  const items = await page.evaluate(async () => (await (await fetch('/api/v1/tokens')).json()).items)
  assert.ok(items.find((t) => t.name === 'e2e token').revoked_at, 'token is revoked')
})

test('jobs', async () => {
  await page.getByTestId('nav-jobs').click()
  await page.getByTestId('job-stats').waitFor()
  await page.waitForLoadState('networkidle')
  await shot(page, 'desktop-jobs')
})

test('API docs', async () => {
  await page.getByTestId('nav-api-docs').click()
  await page.locator('[data-testid="api-docs"] .opblock').first().waitFor({ timeout: 30_000 })
  await shot(page, 'desktop-api-docs')
})

test('no uncaught errors in the page', () => {
  assert.deepEqual(problems, [])
})
