// Switches the language to English and back; the choice survives a reload.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { launch, login, newPage, pickOption, shot } from '../lib.mjs'

let browser
before(async () => {
  browser = await launch()
})
after(async () => {
  await browser?.close()
})

test('switch to English and back to Chinese', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'admin')
    assert.equal((await page.getByTestId('nav-people').innerText()).trim(), '人员')
    await pickOption(page, 'lang-switch', 'lang-en')
    await page.getByTestId('nav-people').filter({ hasText: 'People' }).waitFor()
    assert.equal((await page.getByTestId('nav-roles').innerText()).trim(), 'Roles & permissions')
    assert.equal((await page.getByTestId('nav-audit').innerText()).trim(), 'Audit trail')
    assert.match(await page.getByTestId('welcome').innerText(), /^Welcome/)
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en')
    await page.reload()
    await page.getByTestId('nav-people').filter({ hasText: 'People' }).waitFor()
    await page.getByTestId('nav-people').click()
    await page.getByTestId('people-table').locator('.el-table__row').first().waitFor()
    assert.match(await page.getByTestId('people-total').innerText(), /in total/)
    await shot(page, 'desktop-people-en')
    await pickOption(page, 'lang-switch', 'lang-zh-CN')
    await page.getByTestId('nav-people').filter({ hasText: '人员' }).waitFor()
  } finally {
    await page.context().close()
  }
})

test('the log-in page can be switched to English', async () => {
  const page = await newPage(browser)
  try {
    await page.goto('/login')
    await pickOption(page, 'lang-switch', 'lang-en')
    await page.getByTestId('login-submit').filter({ hasText: 'Log in' }).waitFor()
  } finally {
    await page.context().close()
  }
})
