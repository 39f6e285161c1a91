// A phone-sized viewport (390×844): log in, open the menu drawer, navigate.
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

test('phone: log in, menu drawer, people', async () => {
  const page = await newPage(browser, { phone: true })
  try {
    await page.goto('/login')
    await page.getByTestId('login-submit').waitFor()
    await shot(page, 'phone-login')
    await login(page, 'school', 'admin')
    // The side menu is hidden until the menu button opens the drawer.
    assert.equal(await page.locator('[data-testid="nav"]:visible').count(), 0)
    await shot(page, 'phone-home')
    await page.getByTestId('menu-toggle').click()
    const people = page.locator('[data-testid="nav-drawer"] [data-testid="nav-people"]')
    await people.waitFor({ state: 'visible' })
    await shot(page, 'phone-menu')
    await people.click()
    await page.getByTestId('people-table').locator('.el-table__row').first().waitFor()
    await page.locator('[data-testid="nav-drawer"]').waitFor({ state: 'hidden' })
    // Nothing is wider than the screen.
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(width <= 390, `page is ${width}px wide`)
    await shot(page, 'phone-people')
  } finally {
    await page.context().close()
  }
})

test('360 px wide: no page is wider than the screen', async () => {
  const context = await browser.newContext({
    baseURL: process.env.XIAOTONG_E2E_URL,
    viewport: { width: 360, height: 740 },
    isMobile: true,
    hasTouch: true,
  })
  const page = await context.newPage()
  try {
    await login(page, 'school', 'admin')
    const pages = ['/', '/people', '/import', '/roles', '/audit', '/tokens', '/jobs', '/profile']
    pages.push('/inbox', '/messages', '/messages/new', '/templates', '/templates/new', '/channels', '/preferences')
    for (const path of pages) {
      await page.goto(path)
      await page.locator('.page').first().waitFor()
      await page.waitForLoadState('networkidle')
      const width = await page.evaluate(() => document.documentElement.scrollWidth)
      assert.ok(width <= 360, `${path} is ${width}px wide`)
    }
  } finally {
    await context.close()
  }
})
