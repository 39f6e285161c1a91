// Logs in as each demo role and checks the navigation it should and should not see.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { NAV, allowed, launch, login, me, navNames, newPage, shot } from '../lib.mjs'

const GATED = ['people', 'import', 'roles', 'audit', 'tokens', 'jobs']
const PLATFORM = ['tenants']
const ALWAYS = ['home', 'inbox', 'api-docs', 'preferences', 'profile']

// What each demo log-in must and must not see, beyond "navigation matches
// the permissions the server reports".
const ROLES = [
  { label: 'school admin', tenant: 'school', login: 'admin', see: [...GATED], hide: [...PLATFORM] },
  { label: 'school academic affairs', tenant: 'school', login: 'academic', see: ['people', 'import', 'roles', 'tokens'], hide: ['audit', 'jobs'] },
  { label: 'school teacher', tenant: 'school', login: 'teacher', see: ['people'], hide: ['import', 'roles', 'audit', 'tokens', 'jobs'] },
  { label: 'school parent', tenant: 'school', login: 'parent', see: [], hide: [...GATED] },
  { label: 'school student', tenant: 'school', login: 'student', see: [], hide: [...GATED] },
  { label: 'school vendor (third-party staff)', tenant: 'school', login: 'vendor', see: [], hide: ['import', 'roles', 'audit', 'tokens', 'jobs'] },
  { label: 'training admin', tenant: 'training', login: 'admin', see: [...GATED], hide: [...PLATFORM] },
  { label: 'platform root', tenant: 'platform', login: 'root', see: [...GATED, ...PLATFORM], hide: [] },
]

let browser
before(async () => {
  browser = await launch()
})
after(async () => {
  await browser?.close()
})

for (const role of ROLES) {
  test(`navigation for ${role.label}`, async () => {
    const page = await newPage(browser)
    try {
      await login(page, role.tenant, role.login)
      const m = await me(page)
      assert.equal(m.tenant.code, role.tenant)
      const shown = await navNames(page)
      for (const n of ALWAYS) assert.ok(shown.includes(n), `${role.label} should see ${n}; saw ${shown}`)
      for (const n of role.see) assert.ok(shown.includes(n), `${role.label} should see ${n}; saw ${shown}`)
      for (const n of role.hide) assert.ok(!shown.includes(n), `${role.label} should not see ${n}; saw ${shown}`)
      // The menu is exactly what the permissions allow.
      const expected = Object.entries(NAV)
        .filter(([, perm]) => allowed(perm, m.permissions))
        .map(([name]) => name)
      assert.deepEqual([...shown].sort(), [...expected].sort(), `${role.label}: menu vs permissions ${m.permissions}`)
      if (role.tenant === 'school' && role.login === 'parent') {
        await page.getByTestId('nav-profile').click()
        await page.getByTestId('profile-children').waitFor()
        await shot(page, 'desktop-profile-parent')
      }
    } finally {
      await page.context().close()
    }
  })
}

test('a page without permission sends back home', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'student')
    await page.goto('/audit')
    await page.getByTestId('welcome').waitFor()
    assert.equal(new URL(page.url()).pathname, '/')
  } finally {
    await page.context().close()
  }
})

test('wrong password shows the problem detail', async () => {
  const page = await newPage(browser)
  try {
    await page.goto('/login')
    await page.getByTestId('login-tenant').fill('school')
    await page.getByTestId('login-login').fill('teacher')
    await page.getByTestId('login-password').fill('wrong-password')
    await page.getByTestId('login-submit').click()
    const alert = page.getByTestId('login-error')
    await alert.waitFor()
    const text = (await alert.innerText()).trim()
    assert.ok(text.length > 4, `error alert should explain: ${text}`)
    assert.equal(new URL(page.url()).pathname, '/login')
    await shot(page, 'desktop-login-error')
  } finally {
    await page.context().close()
  }
})

test('logging out returns to the log-in page', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'school', 'teacher')
    await page.getByTestId('user-menu').click()
    await page.locator('[data-testid="logout"]:visible').click()
    await page.getByTestId('login-submit').waitFor()
    await page.goto('/people')
    await page.getByTestId('login-submit').waitFor()
    assert.equal(new URL(page.url()).pathname, '/login')
  } finally {
    await page.context().close()
  }
})

test('repeated failures are throttled (429) and the reason is shown', async () => {
  const page = await newPage(browser)
  try {
    await page.goto('/login')
    await page.getByTestId('login-tenant').fill('school')
    await page.getByTestId('login-login').fill('nobody-e2e-throttle')
    await page.getByTestId('login-password').fill('wrong-password')
    let status = 0
    for (let i = 0; i < 8 && status !== 429; i++) {
      const res = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/login'))
      await page.getByTestId('login-submit').click()
      status = (await res).status()
    }
    assert.equal(status, 429, 'log-in is throttled after repeated failures')
    const alert = page.getByTestId('login-error')
    await alert.waitFor()
    const text = await alert.innerText()
    assert.match(text, /尝试次数过多|Too many/, text)
    await shot(page, 'desktop-login-throttled')
  } finally {
    await page.context().close()
  }
})

test('platform root lists institutions and creates one', async () => {
  const page = await newPage(browser)
  try {
    await login(page, 'platform', 'root')
    await page.getByTestId('nav-tenants').click()
    const table = page.getByTestId('tenants-table')
    await table.getByText('school', { exact: true }).waitFor()
    await table.getByText('training', { exact: true }).waitFor()
    await page.getByTestId('tenant-create').click()
    await page.getByTestId('tenant-code').fill('e2eschool')
    await page.getByTestId('tenant-name').fill('端到端测试学校')
    await page.getByTestId('tenant-save').click()
    await table.getByText('端到端测试学校').waitFor()
    await shot(page, 'desktop-tenants')
  } finally {
    await page.context().close()
  }
})
