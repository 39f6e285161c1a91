// Shared helpers for the browser tests.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = path.dirname(fileURLToPath(import.meta.url))
export const SCREENSHOT_DIR = path.resolve(here, '../../docs/screenshots')
export const BASE = process.env.XIAOTONG_E2E_URL || 'http://127.0.0.1:8080'
export const PASSWORD = 'Demo@2026'

export const DESKTOP = { width: 1366, height: 860 }
export const PHONE = { width: 390, height: 844 }

/** Every navigation entry of the app, with the permission it needs (any of a list). */
export const NAV = {
  home: null,
  inbox: null,
  compose: 'messages.send',
  messages: ['messages.send', 'messages.read'],
  templates: 'messages.manage',
  channels: 'messages.manage',
  'lessons-attendance': 'lessons.checkin',
  'lessons-mine': 'lessons.read',
  'lessons-courses': 'lessons.manage',
  'lessons-packages': 'lessons.manage',
  'lessons-accounts': 'lessons.manage',
  'lessons-transfers': 'lessons.manage',
  'lessons-reports': 'lessons.reports',
  'lessons-settings': 'lessons.manage',
  people: 'people.read',
  import: 'import.run',
  roles: 'roles.read',
  audit: 'audit.read',
  tokens: 'tokens.manage',
  jobs: 'jobs.read',
  tenants: 'tenants.manage',
  'api-docs': null,
  preferences: null,
  profile: null,
}

/** Whether a user with `permissions` sees a navigation entry needing `perm`. */
export function allowed(perm, permissions) {
  if (perm === null) return true
  return (Array.isArray(perm) ? perm : [perm]).some((p) => permissions.includes(p))
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.XIAOTONG_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

/** A fresh context (own cookies and localStorage) and page. */
export async function newPage(browser, { phone = false, locale } = {}) {
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: phone ? PHONE : DESKTOP,
    deviceScaleFactor: phone ? 2 : 1,
    isMobile: phone,
    hasTouch: phone,
    locale: 'zh-CN',
    // The demo's institutions keep Beijing time; a browser in UTC would see
    // another "today" than the server from 16:00 to 24:00 UTC.
    timezoneId: 'Asia/Shanghai',
  })
  if (locale) {
    await context.addInitScript((l) => {
      if (!localStorage.getItem('xt_locale')) localStorage.setItem('xt_locale', l)
    }, locale)
  }
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)
  return page
}

export async function login(page, tenant, login, password = PASSWORD) {
  await page.goto('/login')
  await page.getByTestId('login-tenant').fill(tenant)
  await page.getByTestId('login-login').fill(login)
  await page.getByTestId('login-password').fill(password)
  await page.getByTestId('login-submit').click()
  await page.getByTestId('welcome').waitFor()
}

/** The logged-in user as the API reports it (uses the page's session). */
export async function me(page) {
  return page.evaluate(async () => {
    const r = await fetch('/api/v1/auth/me')
    return r.json()
  })
}

/** Names of the navigation entries shown (desktop side menu). */
export async function navNames(page) {
  const ids = await page
    .locator('[data-testid="nav"] [data-testid^="nav-"]')
    .evaluateAll((els) => els.map((e) => e.getAttribute('data-testid')))
  return ids.map((id) => id.replace(/^nav-/, ''))
}

export async function shot(page, name, { fullPage = false } = {}) {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true })
  await page.waitForTimeout(400) // let transitions settle
  // Toasts are transient; keep them out of the pictures.
  await page.evaluate(() => document.querySelectorAll('.el-message').forEach((el) => el.remove()))
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage })
}

/** Picks an option of an Element Plus select by its visible label. */
export async function pickOption(page, selectTestId, optionTestId) {
  await page.getByTestId(selectTestId).click()
  const opt = page.locator(`.el-select-dropdown [data-testid="${optionTestId}"]:visible`)
  await opt.click()
}
