#!/usr/bin/env node
// Runs the browser tests against a real Xiaotong server:
//   1. builds web/dist if it is missing or older than the sources,
//   2. starts `$XIAOTONG_BIN demo --listen 127.0.0.1:<free port> --data-dir <temp dir>`,
//   3. waits for GET /readyz = 200 (up to 60 s),
//   4. runs e2e/tests/*.test.mjs with node's built-in test runner,
//   5. stops the server and exits with the test runner's status.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const webDir = path.resolve(here, '..')
const bin = path.resolve(webDir, process.env.XIAOTONG_BIN || '../target/debug/xiaotong')

function log(msg) {
  process.stderr.write(`[e2e] ${msg}\n`)
}

function newestMtime(dir) {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    const m = entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs
    if (m > newest) newest = m
  }
  return newest
}

function ensureBuilt() {
  const index = path.join(webDir, 'dist', 'index.html')
  const srcTime = Math.max(
    newestMtime(path.join(webDir, 'src')),
    fs.statSync(path.join(webDir, 'index.html')).mtimeMs,
    fs.statSync(path.join(webDir, 'package-lock.json')).mtimeMs,
  )
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= srcTime && !process.env.XIAOTONG_E2E_REBUILD) return
  log('building the web app (npm run build)')
  const r = spawnSync('npm', ['run', 'build'], { cwd: webDir, stdio: ['ignore', 'inherit', 'inherit'] })
  if (r.status !== 0) {
    log('npm run build failed')
    process.exit(1)
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function waitReady(base, child, deadlineMs) {
  const until = Date.now() + deadlineMs
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`server exited early with code ${child.exitCode}`)
    try {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) })
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`server not ready after ${deadlineMs / 1000} s`)
}

async function main() {
  if (!fs.existsSync(bin)) {
    log(`server binary not found: ${bin} (build it with \`cargo build -p xiaotong\` or set XIAOTONG_BIN)`)
    process.exit(1)
  }
  if (!fs.existsSync(process.env.XIAOTONG_CHROMIUM || '/usr/bin/chromium')) {
    log('Chromium not found at /usr/bin/chromium (run .ci/setup-web.sh)')
    process.exit(1)
  }
  ensureBuilt()

  const tmpRoot = path.join(webDir, 'e2e', '.tmp')
  fs.mkdirSync(tmpRoot, { recursive: true })
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xiaotong-e2e-'))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const logFile = path.join(tmpRoot, 'server.log')
  const out = fs.openSync(logFile, 'w')
  log(`starting ${bin} demo on ${base} (data ${dataDir}, log ${logFile})`)
  // The demo always runs on its own embedded database in the temp dir.
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' }
  delete env.XIAOTONG_DATABASE_URL
  delete env.XIAOTONG_LISTEN
  const server = spawn(bin, ['demo', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    cwd: path.resolve(webDir, '..'),
    stdio: ['ignore', out, out],
    env,
  })

  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    if (server.exitCode === null) server.kill('SIGTERM')
    setTimeout(() => server.exitCode === null && server.kill('SIGKILL'), 5000).unref()
  }
  process.on('SIGINT', () => {
    stop()
    process.exit(130)
  })
  process.on('SIGTERM', () => {
    stop()
    process.exit(143)
  })

  try {
    await waitReady(base, server, 60_000)
  } catch (e) {
    log(String(e))
    stop()
    log('server log tail:\n' + fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n'))
    process.exit(1)
  }
  log('server ready')

  const testDir = path.join(here, 'tests')
  const only = process.env.XIAOTONG_E2E_ONLY
  const files = fs
    .readdirSync(testDir)
    .filter((f) => f.endsWith('.test.mjs') && (!only || f.includes(only)))
    .sort()
    .map((f) => path.join(testDir, f))

  const code = await new Promise((resolve) => {
    const runner = spawn(
      process.execPath,
      ['--test', '--test-concurrency=1', '--test-timeout=180000', '--test-reporter=spec', ...files],
      { cwd: webDir, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, XIAOTONG_E2E_URL: base } },
    )
    runner.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)))
  })

  stop()
  await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)))
  try {
    fs.rmSync(dataDir, { recursive: true, force: true })
  } catch {
    // leave it
  }
  process.exit(code)
}

main().catch((e) => {
  log(e && e.stack ? e.stack : String(e))
  process.exit(1)
})
