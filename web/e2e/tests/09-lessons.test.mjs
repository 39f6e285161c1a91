// Lesson hours in the training centre: a teacher checks in a class on a
// phone (one absent, the rest present) in one request; the server holds
// exactly one debit per present student; a parent sees the deduction, its
// receipt hash and the notice in the inbox; staff sell a package and refund
// it (the computed amount shown before the confirmation); the reports show
// the heatmap with a day's lessons and the payroll downloads as XLSX;
// settings and pay rules are kept; a transfer is approved by someone else.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { launch, login, me, newPage, shot } from '../lib.mjs'
import { readXlsx } from '../xlsx.mjs'

const TENANT = 'training'

let browser
before(async () => {
  browser = await launch()
})
after(async () => {
  await browser?.close()
})

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

async function apiOk(page, method, path, body) {
  const r = await apiCall(page, method, path, body)
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** Hours (hundredths) as the app writes them: 150 → "1.50". */
function hours(h) {
  const a = Math.abs(h)
  return `${h < 0 ? '-' : ''}${Math.floor(a / 100).toLocaleString('en-US')}.${String(a % 100).padStart(2, '0')}`
}

// Shared between the tests (they run in order in this file).
const state = {}

test('a teacher checks in a class on a phone: one absent, the rest present, one request', async () => {
  const admin = await newPage(browser)
  const teacher = await newPage(browser, { phone: true })
  const problems = []
  teacher.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(admin, TENANT, 'admin')
    await login(teacher, TENANT, 'teacher')
    const teacherMe = await me(teacher)
    state.teacherName = teacherMe.name

    // Today's lessons: the teacher sees their own only.
    await teacher.goto('/lessons/attendance')
    const list = teacher.getByTestId('attendance-sessions')
    const card = list.locator('[data-testid^="attendance-session-"]').first()
    await card.waitFor()
    const own = await apiOk(teacher, 'GET', '/api/v1/lessons/classes')
    assert.ok(own.items.length >= 1 && own.items.every((c) => c.teacher_ids.includes(teacherMe.id)), 'a teacher reaches own classes only')
    await shot(teacher, 'phone-attendance-today')
    const sessionId = Number((await card.getAttribute('data-testid')).replace('attendance-session-', ''))
    state.sessionId = sessionId

    const sheet = await apiOk(teacher, 'GET', `/api/v1/lessons/sessions/${sessionId}/attendance`)
    assert.ok(sheet.rows.length >= 3, 'a class to check in')
    assert.ok(sheet.rows.every((r) => r.status === null), 'nobody is checked in yet')
    const need = sheet.session.hours
    // The parent's child is in the demo teacher's class.
    const parent = await newPage(browser)
    await login(parent, TENANT, 'parent')
    const child = (await me(parent)).children[0]
    await parent.context().close()
    assert.ok(child && sheet.rows.some((r) => r.student_id === child.id), 'the demo student is in the class')
    state.child = child

    // Anyone short of hours gets a top-up first (setup, as staff).
    for (const r of sheet.rows.filter((r) => r.remaining === null || r.remaining < need)) {
      const accounts = (await apiOk(admin, 'GET', `/api/v1/lessons/accounts?student_id=${r.student_id}`)).items
      const acc = accounts.find((a) => a.state === 'active' && !a.frozen)
      assert.ok(acc, `an account for ${r.name}`)
      await apiOk(admin, 'POST', `/api/v1/lessons/accounts/${acc.id}/top-up`, { paid_hours: 1000, bonus_hours: 0, price_fen: 180000 })
    }
    if (sheet.rows.some((r) => r.remaining === null || r.remaining < need)) await teacher.reload()

    const absent = sheet.rows.find((r) => r.student_id !== child.id)
    state.absentId = absent.student_id
    const present = sheet.rows.filter((r) => r.student_id !== absent.student_id)

    await card.click()
    await teacher.getByTestId('attendance-sheet').waitFor()
    const rowOf = (id) => teacher.getByTestId(`attendance-row-${id}`)
    await rowOf(child.id).getByTestId('attendance-remaining').waitFor()
    assert.match(await rowOf(child.id).getByTestId('attendance-remaining').innerText(), /剩余 [\d,]+\.\d\d 课时/)
    // Submit stays disabled until everyone is marked.
    assert.equal(await teacher.getByTestId('attendance-submit').isDisabled(), true)
    await teacher.getByTestId('attendance-all-present').click()
    await rowOf(absent.student_id).getByTestId('mark-absent').click()
    assert.equal(await rowOf(absent.student_id).getByTestId('mark-absent').getAttribute('aria-checked'), 'true')
    await shot(teacher, 'phone-attendance-sheet')

    // One request for the whole class.
    const checkins = []
    teacher.on('request', (r) => r.url().includes(`/sessions/${sessionId}/checkin`) && checkins.push(r))
    const res = teacher.waitForResponse((r) => r.url().includes(`/sessions/${sessionId}/checkin`))
    await teacher.getByTestId('attendance-submit').click()
    const body = await (await res).json()
    assert.equal(checkins.length, 1, 'one request')
    assert.equal(body.results.length, sheet.rows.length)

    // Each present student's deduction and new balance; the absent one keeps their hours.
    for (const r of present) {
      const result = rowOf(r.student_id).getByTestId('attendance-result')
      await result.waitFor()
      const text = await result.innerText()
      const mine = body.results.find((x) => x.student_id === r.student_id)
      assert.equal(mine.hours, need)
      assert.ok(text.includes(`扣 ${hours(need)} 课时`), text)
      assert.ok(text.includes(`余 ${hours(mine.balance_after)} 课时`), text)
    }
    const absentText = await rowOf(absent.student_id).getByTestId('attendance-result').innerText()
    assert.match(absentText, /未扣课时/)
    assert.match(await rowOf(absent.student_id).getByTestId('attendance-status').innerText(), /缺勤/)
    state.childBalance = body.results.find((x) => x.student_id === child.id).balance_after
    await shot(teacher, 'phone-attendance-done')

    // The server holds exactly one debit per present student, none for the absent one.
    for (const r of sheet.rows) {
      const entries = (await apiOk(admin, 'GET', `/api/v1/lessons/students/${r.student_id}/ledger`)).items
      const debits = entries.filter((e) => e.session_id === sessionId && e.kind === 'consume')
      if (r.student_id === absent.student_id) assert.equal(debits.length, 0, `${r.name} was absent`)
      else {
        assert.equal(debits.length, 1, `${r.name}: one debit`)
        assert.equal(debits[0].amount, -need)
      }
      if (r.student_id === child.id) state.childEntry = debits[0]
    }
    // Submitting again changes nothing (the sheet now shows marks, no toggles).
    assert.equal(await teacher.getByTestId('attendance-submit').count(), 0)
    const again = await apiOk(teacher, 'POST', `/api/v1/lessons/sessions/${sessionId}/checkin`, {
      marks: [{ student_id: child.id, status: 'present' }],
    })
    assert.equal(again.results[0].created, false)

    // A correction from the sheet: the absent student was late after all.
    await rowOf(absent.student_id).getByTestId('attendance-correct').click()
    await teacher.getByTestId('correct-late').click()
    const corr = teacher.waitForResponse((r) => r.url().includes(`/attendance/${absent.student_id}/correct`))
    await teacher.getByTestId('correct-save').click()
    assert.equal((await corr).status(), 200)
    await rowOf(absent.student_id).getByTestId('attendance-status').filter({ hasText: '迟到' }).waitFor()
    assert.deepEqual(problems, [])
  } finally {
    await admin.context().close()
    await teacher.context().close()
  }
})

test('the parent sees the deduction, its receipt hash and the notice in the inbox', async () => {
  assert.ok(state.childEntry, 'the check-in ran')
  const parent = await newPage(browser, { phone: true })
  const problems = []
  parent.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(parent, TENANT, 'parent')
    await parent.goto('/lessons/mine')
    await parent.getByTestId('mine-detail').waitFor()
    const receipt = parent.getByTestId('receipt-consume').first()
    await receipt.waitFor()
    // The newest entry is today's lesson: amount, balance after and hash.
    assert.equal(await receipt.getByTestId('receipt-hash').getAttribute('data-hash'), state.childEntry.hash)
    assert.equal((await receipt.getByTestId('receipt-amount').innerText()).trim(), hours(state.childEntry.amount))
    assert.equal((await receipt.getByTestId('receipt-balance').innerText()).trim(), hours(state.childBalance))
    // The account's balance shows the new value.
    const balances = await parent.getByTestId('mine-balance').allInnerTexts()
    assert.ok(
      balances.some((b) => b.includes(hours(state.childBalance))),
      `${balances} has ${hours(state.childBalance)}`,
    )
    // Today's lesson is in the attendance history.
    assert.match(await parent.getByTestId('mine-history').innerText(), /出勤/)
    await shot(parent, 'phone-my-lesson-hours')

    // Another family's child is out of reach.
    const other = await apiCall(parent, 'GET', `/api/v1/lessons/students/${state.absentId}/lessons`)
    assert.equal(other.status, 404)

    // The notice arrives in the inbox through the job runner.
    const deadline = Date.now() + 60_000
    let item
    while (!item && Date.now() < deadline) {
      const inbox = await apiOk(parent, 'GET', '/api/v1/inbox?page=1&per_page=20')
      item = inbox.items.find(
        (i) => i.body_html.includes(state.child.name) && i.body_html.includes(`剩余 ${hours(state.childBalance)} 课时`),
      )
      if (!item) await parent.waitForTimeout(1000)
    }
    assert.ok(item, 'the check-in notice reached the inbox')
    await parent.goto('/inbox')
    await parent.getByText(item.title).first().waitFor()
    await shot(parent, 'phone-lesson-notice')
    assert.deepEqual(problems, [])
  } finally {
    await parent.context().close()
  }
})

test('staff sell a package, the accounts appear, a refund shows its amount before the confirmation', async () => {
  const admin = await newPage(browser)
  const problems = []
  admin.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(admin, TENANT, 'admin')
    const packages = (await apiOk(admin, 'GET', '/api/v1/lessons/packages')).items
    const pkg = packages.find((p) => p.pools.length === 2) ?? packages[0]
    const people = await apiOk(admin, 'GET', '/api/v1/people?kind=student&per_page=5&q=')
    const student = people.items[people.items.length - 1]
    const before = (await apiOk(admin, 'GET', `/api/v1/lessons/accounts?student_id=${student.id}`)).items

    await admin.goto('/lessons/packages')
    await admin.getByTestId('packages-table').locator('.el-table__row').first().waitFor()
    assert.ok((await admin.getByTestId('package-price').first().innerText()).startsWith('¥'))
    await shot(admin, 'desktop-lesson-packages')
    await admin.getByTestId('package-sell').click()
    await admin.getByTestId('sell-student').click()
    await admin.keyboard.type(student.name)
    await admin.locator(`.el-select-dropdown:visible [data-testid="person-option-${student.id}"]`).click()
    await admin.getByTestId('sell-package').click()
    await admin.locator(`.el-select-dropdown:visible [data-testid="sell-package-${pkg.id}"]`).click()
    await admin.getByTestId('sell-confirm').click()
    // The confirmation names the student, the package and the price.
    const box = admin.locator('.el-message-box')
    await box.waitFor()
    const boxText = await box.innerText()
    assert.ok(boxText.includes(student.name) && boxText.includes(pkg.name), boxText)
    await box.locator('.el-button--primary').click()
    const result = admin.getByTestId('sale-accounts')
    await result.locator('.el-table__row').first().waitFor()
    assert.equal(await result.locator('.el-table__row').count(), pkg.pools.length)

    const afterSale = (await apiOk(admin, 'GET', `/api/v1/lessons/accounts?student_id=${student.id}`)).items
    const added = afterSale.filter((a) => !before.some((b) => b.id === a.id))
    assert.equal(added.length, pkg.pools.length, 'one account per pool')
    await shot(admin, 'desktop-lesson-sale')

    // The student's accounts and ledger; refund the first new account.
    await admin.getByTestId('sale-ledger-link').click()
    const acc = added[0]
    const row = admin.getByTestId('accounts-table').locator('.el-table__row', { hasText: `#${acc.id}` }).first()
    await row.waitFor()
    await admin.getByTestId('ledger-table').locator('.el-table__row').first().waitFor()
    assert.match(await admin.getByTestId('ledger-table').innerText(), /购买/)
    await shot(admin, 'desktop-lesson-ledger')
    const requested = admin.waitForResponse((r) => r.url().endsWith(`/accounts/${acc.id}/refunds`))
    await row.getByTestId('account-refund').click()
    const refund = await (await requested).json()
    // Unused paid hours × price ÷ paid hours: all of it, nothing used yet.
    assert.equal(refund.hours, acc.paid_hours)
    assert.equal(refund.amount_fen, acc.price_fen)
    const computed = admin.getByTestId('refund-computed')
    await computed.waitFor()
    const yuan = `¥${Math.floor(refund.amount_fen / 100).toLocaleString('en-US')}.${String(refund.amount_fen % 100).padStart(2, '0')}`
    assert.ok((await computed.innerText()).includes(yuan), await computed.innerText())
    // Nothing is refunded before the second confirmation.
    assert.equal((await apiOk(admin, 'GET', `/api/v1/lessons/accounts/${acc.id}`)).state, 'active')
    await shot(admin, 'desktop-lesson-refund')
    assert.ok((await admin.getByTestId('refund-confirm').innerText()).includes(yuan))
    await admin.getByTestId('refund-confirm').click()
    await admin.getByTestId('refund-dialog').waitFor({ state: 'hidden' })
    const closed = await apiOk(admin, 'GET', `/api/v1/lessons/accounts/${acc.id}`)
    assert.notEqual(closed.state, 'active')
    await row.getByText(/已退费|已关闭/).waitFor()
    const ledger = (await apiOk(admin, 'GET', `/api/v1/lessons/accounts/${acc.id}/ledger`)).items
    assert.ok(ledger.some((e) => e.kind === 'refund'), 'a refund entry')
    assert.deepEqual(problems, [])
  } finally {
    await admin.context().close()
  }
})

test('reports: the heatmap drills into a day, the payroll downloads as XLSX, the KPIs show', async () => {
  const admin = await newPage(browser)
  const problems = []
  admin.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(admin, TENANT, 'admin')
    await admin.goto('/lessons/reports')
    const heat = admin.getByTestId('heatmap')
    await heat.locator('canvas').waitFor()
    const year = Number(await heat.getAttribute('data-year'))
    const days = (await apiOk(admin, 'GET', `/api/v1/lessons/reports/heatmap?year=${year}`)).items
    assert.ok(days.length > 30, 'a year of lessons')
    // Click the busiest day's cell: the calendar's layout is fixed (cell size, left, top; weeks from Monday).
    const busiest = days.reduce((a, b) => (b.hours > a.hours ? b : a))
    const cell = Number(await heat.getAttribute('data-cell'))
    const left = Number(await heat.getAttribute('data-left'))
    const top = Number(await heat.getAttribute('data-top'))
    const jan1 = Date.UTC(year, 0, 1)
    const [y, m, d] = busiest.date.split('-').map(Number)
    const index = Math.round((Date.UTC(y, m - 1, d) - jan1) / 86_400_000)
    const offset = (new Date(jan1).getUTCDay() + 6) % 7
    const col = Math.floor((index + offset) / 7)
    const rowIndex = (index + offset) % 7
    await admin.waitForTimeout(500) // the chart's first render
    await heat.locator('canvas').first().click({ position: { x: left + col * cell + cell / 2, y: top + rowIndex * cell + cell / 2 } })
    const dayBox = admin.getByTestId('heatmap-day')
    await dayBox.waitFor()
    assert.ok((await dayBox.innerText()).includes(busiest.date), await dayBox.innerText())
    const lessons = (await apiOk(admin, 'GET', `/api/v1/lessons/reports/day?date=${busiest.date}`)).items
    assert.ok(lessons.length > 0)
    await admin.getByTestId('heatmap-day-table').locator('.el-table__row').first().waitFor()
    assert.equal(await admin.getByTestId('heatmap-day-table').locator('.el-table__row').count(), lessons.length)
    await shot(admin, 'desktop-lesson-heatmap')

    // Consumption by teacher.
    await admin.getByRole('tab', { name: '消课统计' }).click()
    await admin.getByTestId('consumption-by').getByText('教师').click()
    await admin.getByTestId('consumption-table').locator('.el-table__row').first().waitFor()
    assert.match(await admin.getByTestId('consumption-total').innerText(), /合计: [\d,]+\.\d\d 课时 · ¥/)

    // Payroll of this month: the table and its workbook agree.
    await admin.getByRole('tab', { name: '课酬' }).click()
    await admin.getByTestId('payroll-table').locator('.el-table__row').first().waitFor()
    const month = /month=(\d{4}-\d{2})/.exec(await admin.getByTestId('payroll-download').getAttribute('href'))[1]
    const payroll = (await apiOk(admin, 'GET', `/api/v1/lessons/reports/payroll?month=${month}`)).items
    const mine = payroll.find((r) => r.teacher_name === state.teacherName)
    assert.ok(mine, `the demo teacher is paid in ${month}`)
    await shot(admin, 'desktop-lesson-payroll')
    const download = admin.waitForEvent('download')
    await admin.getByTestId('payroll-download').click()
    const file = await download
    assert.match(file.suggestedFilename(), /^payroll-\d{4}-\d{2}\.xlsx$/)
    const rows = readXlsx(fs.readFileSync(await file.path()))
    assert.equal(rows[0][0], '教师 teacher')
    const total = rows.find((r) => r[0] === `${state.teacherName} 合计 total`)
    assert.ok(total, 'a total row for the teacher')
    assert.equal(Math.round(Number(total[5]) * 100), mine.pay_fen)

    // The two KPIs.
    await admin.getByRole('tab', { name: '指标' }).click()
    await admin.getByTestId('kpis').waitFor()
    assert.match(await admin.getByTestId('kpi-conversion').innerText(), /%|—/)
    assert.match(await admin.getByTestId('kpi-saturation').innerText(), /\d+\.\d%/)
    await shot(admin, 'desktop-lesson-kpis')
    assert.deepEqual(problems, [])
  } finally {
    await admin.context().close()
  }
})

test('every lesson page opens for the training admin', async () => {
  const admin = await newPage(browser)
  const problems = []
  admin.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(admin, TENANT, 'admin')
    for (const name of ['lessons-courses', 'lessons-packages', 'lessons-accounts', 'lessons-attendance', 'lessons-reports', 'lessons-mine', 'lessons-transfers', 'lessons-settings']) {
      await admin.getByTestId(`nav-${name}`).click()
      await admin.waitForLoadState('networkidle')
    }
    // Courses with hours per lesson as 1.50, classes with their teachers.
    await admin.getByTestId('nav-lessons-courses').click()
    await admin.getByTestId('courses-table').locator('.el-table__row').first().waitFor()
    assert.match(await admin.getByTestId('course-hours').first().innerText(), /^\d+\.\d\d$/)
    await shot(admin, 'desktop-lesson-courses')
    // A new course: 1.25 h per lesson is stored as 125 hundredths.
    await admin.getByTestId('course-create').click()
    const name = `E2E 乐理课 ${Date.now() % 100000}`
    await admin.getByTestId('course-name').fill(name)
    await admin.getByTestId('course-hours-input').fill('1.25')
    const created = admin.waitForResponse((r) => r.url().endsWith('/api/v1/lessons/courses') && r.request().method() === 'POST')
    await admin.getByTestId('course-save').click()
    const course = await (await created).json()
    assert.equal(course.hours_per_lesson, 125)
    await admin.getByTestId('courses-table').getByText(name).waitFor()
    // Classes and a new session of one.
    await admin.getByRole('tab', { name: '班级' }).click()
    await admin.getByTestId('classes-table').locator('.el-table__row').first().waitFor()
    await admin.getByTestId('classes-table').getByTestId('class-sessions').first().click()
    await admin.getByTestId('sessions-table').locator('.el-table__row').first().waitFor()
    await shot(admin, 'desktop-lesson-sessions')
    assert.deepEqual(problems, [])
  } finally {
    await admin.context().close()
  }
})

test('an admin changes the low-balance threshold and a pay rule; both are kept after a reload', async () => {
  const admin = await newPage(browser)
  const problems = []
  admin.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(admin, TENANT, 'admin')
    const before = await apiOk(admin, 'GET', '/api/v1/lessons/settings')
    const low = before.low_balance_hours === 650 ? 725 : 650
    const rules = (await apiOk(admin, 'GET', '/api/v1/lessons/pay-rules')).items
    const fen = rules.find((r) => r.course_kind === 'small_group').fen_per_hour === 12345 ? 23456 : 12345

    await admin.getByTestId('nav-lessons-settings').click()
    const lowInput = admin.getByTestId('settings-low-balance')
    await admin.waitForFunction((v) => document.querySelector('[data-testid="settings-low-balance"]')?.value === v, hours(before.low_balance_hours))
    // A readable error next to the field, and no request, for a bad value.
    await lowInput.fill('四小时')
    await admin.getByTestId('settings-form').getByText('请输入不小于 0 的课时').waitFor()
    assert.equal(await admin.getByTestId('settings-save').isDisabled(), true)
    await lowInput.fill(hours(low))
    const saved = admin.waitForResponse((r) => r.url().endsWith('/api/v1/lessons/settings') && r.request().method() === 'PUT')
    await admin.getByTestId('settings-save').click()
    const body = await (await saved).json()
    assert.equal(body.low_balance_hours, low)
    assert.equal(body.makeup_ratio_pct, before.makeup_ratio_pct, 'the other fields are sent unchanged')

    const rule = admin.getByTestId('payrule-small_group')
    const yuan = `${Math.floor(fen / 100)}.${String(fen % 100).padStart(2, '0')}`
    await rule.getByTestId('payrule-per-hour').fill(yuan)
    const ruleSaved = admin.waitForResponse((r) => r.url().endsWith('/api/v1/lessons/pay-rules') && r.request().method() === 'PUT')
    await rule.getByTestId('payrule-save').click()
    const ruleReq = (await ruleSaved).request().postDataJSON()
    assert.deepEqual(ruleReq, {
      course_kind: 'small_group',
      fen_per_hour: fen,
      fen_per_student_hour: rules.find((r) => r.course_kind === 'small_group').fen_per_student_hour,
    })
    await shot(admin, 'desktop-lesson-settings', { fullPage: true })

    await admin.reload()
    await admin.waitForFunction((v) => document.querySelector('[data-testid="settings-low-balance"]')?.value === v, hours(low))
    assert.equal(await admin.getByTestId('payrule-small_group').getByTestId('payrule-per-hour').inputValue(), yuan)
    assert.equal((await apiOk(admin, 'GET', '/api/v1/lessons/settings')).low_balance_hours, low)
    assert.deepEqual(problems, [])
  } finally {
    await admin.context().close()
  }
})

test('a transfer is requested from a student account, approved by someone else, and listed as approved', async () => {
  const admin = await newPage(browser)
  const academic = await newPage(browser, { phone: true })
  const problems = []
  admin.on('pageerror', (e) => problems.push(String(e)))
  academic.on('pageerror', (e) => problems.push(String(e)))
  try {
    await login(admin, TENANT, 'admin')
    const accounts = (await apiOk(admin, 'GET', '/api/v1/lessons/accounts')).items
    const acc = accounts.find((a) => a.state === 'active' && !a.frozen && a.balance >= 300)
    assert.ok(acc, 'an account with hours to give')
    const other = accounts.find((a) => a.student_id !== acc.student_id)
    const from = await apiOk(admin, 'GET', `/api/v1/people/${acc.student_id}`)
    const to = await apiOk(admin, 'GET', `/api/v1/people/${other.student_id}`)

    // Requested in the student's accounts.
    await admin.goto(`/lessons/accounts/${from.id}`)
    const row = admin.getByTestId('accounts-table').locator('.el-table__row', { hasText: `#${acc.id}` }).first()
    await row.getByTestId('account-transfer').click()
    await admin.getByTestId('transfer-to').click()
    await admin.keyboard.type(to.name)
    await admin.locator(`.el-select-dropdown:visible [data-testid="person-option-${to.id}"]`).click()
    await admin.getByTestId('transfer-hours').fill('1.50')
    const requested = admin.waitForResponse((r) => r.url().endsWith('/api/v1/lessons/transfers') && r.request().method() === 'POST')
    await admin.getByTestId('transfer-save').click()
    const transfer = await (await requested).json()
    assert.equal(transfer.state, 'pending')
    assert.equal(transfer.hours, 150)

    // The requester sees it pending; approving it would be their own.
    await admin.getByTestId('accounts-transfers').click()
    const adminRow = admin.getByTestId('transfers-table').locator('.transfer-row', { hasText: from.name }).filter({ hasText: to.name }).first()
    await adminRow.getByTestId('transfer-state').filter({ hasText: '待审批' }).waitFor()
    await shot(admin, 'desktop-lesson-transfers')

    // Someone else approves it, on a phone, after the confirmation.
    await login(academic, TENANT, 'academic')
    await academic.goto('/lessons/transfers')
    const pendingRow = academic.getByTestId('transfers-table').locator('.transfer-row', { hasText: from.name }).filter({ hasText: to.name }).first()
    await pendingRow.getByTestId('transfer-approve').click()
    const box = academic.locator('.el-message-box')
    await box.waitFor()
    const boxText = await box.innerText()
    assert.ok(boxText.includes(from.name) && boxText.includes(to.name) && boxText.includes('1.50'), boxText)
    await shot(academic, 'phone-lesson-transfer-approve')
    const approved = academic.waitForResponse((r) => r.url().endsWith(`/api/v1/lessons/transfers/${transfer.id}/approve`))
    await box.locator('.el-button--primary').click()
    const decided = await (await approved).json()
    assert.equal(decided.state, 'approved')

    await academic.getByTestId('transfers-filter-approved').click()
    await academic.waitForURL(/state=approved/)
    const done = academic.getByTestId('transfers-table').locator('.transfer-row', { hasText: from.name }).filter({ hasText: to.name }).first()
    await done.getByTestId('transfer-state').filter({ hasText: '已通过' }).waitFor()
    // The hours moved: out of the giving account, into a new one of the receiver.
    assert.equal((await apiOk(admin, 'GET', `/api/v1/lessons/accounts/${acc.id}`)).balance, acc.balance - 150)
    assert.equal((await apiOk(admin, 'GET', `/api/v1/lessons/accounts/${decided.to_account_id}`)).balance, 150)
    const list = (await apiOk(admin, 'GET', '/api/v1/lessons/transfers?state=approved')).items
    assert.ok(list.some((x) => x.id === transfer.id && x.decided_by_name), 'listed as approved with the approver')
    assert.deepEqual(problems, [])
  } finally {
    await admin.context().close()
    await academic.context().close()
  }
})
