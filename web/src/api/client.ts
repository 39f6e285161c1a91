// Thin fetch wrapper: JSON in and out, CSRF header on state-changing
// requests, RFC 9457 problem+json turned into ApiError, 401 reported to
// whoever registered an unauthorized handler (the router sends to log-in).
import type { Problem } from './types'

export class ApiError extends Error {
  readonly status: number
  readonly problem: Problem
  readonly retryAfter: number | null

  constructor(status: number, problem: Problem, retryAfter: number | null = null) {
    super(problem.detail || problem.title || `HTTP ${status}`)
    this.name = 'ApiError'
    this.status = status
    this.problem = problem
    this.retryAfter = retryAfter
  }

  /** Field errors as a map field → message (first message per field). */
  get fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const e of this.problem.errors ?? []) {
      if (e && e.field && !(e.field in out)) out[e.field] = e.message
    }
    return out
  }
}

/** Network failure (server unreachable, aborted, invalid JSON). */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NetworkError'
  }
}

let onUnauthorized: (() => void) | null = null

export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn
}

export function readCookie(name: string): string | null {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === name) return decodeURIComponent(v.join('='))
  }
  return null
}

export type Query = Record<string, string | number | boolean | null | undefined>

export function withQuery(path: string, query?: Query): string {
  if (!query) return path
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue
    params.set(k, String(v))
  }
  const s = params.toString()
  return s ? `${path}?${s}` : path
}

interface RequestOptions {
  query?: Query
  body?: unknown
  /** Do not call the unauthorized handler on 401 (log-in, me). */
  quiet401?: boolean
}

async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json, application/problem+json' }
  let body: BodyInit | undefined
  if (opts.body instanceof FormData) {
    body = opts.body
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(opts.body)
  }
  if (method !== 'GET' && method !== 'HEAD') {
    const csrf = readCookie('xt_csrf')
    if (csrf) headers['X-CSRF-Token'] = csrf
  }
  let res: Response
  try {
    res = await fetch(withQuery(path, opts.query), {
      method,
      headers,
      body,
      credentials: 'same-origin',
    })
  } catch (e) {
    throw new NetworkError(e instanceof Error ? e.message : String(e))
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  let data: unknown = undefined
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      if (res.ok) throw new NetworkError(`invalid JSON from ${path}`)
      data = { title: res.statusText, detail: text.slice(0, 500) }
    }
  }
  if (!res.ok) {
    const problem: Problem =
      data && typeof data === 'object' ? (data as Problem) : { title: res.statusText || `HTTP ${res.status}` }
    if (problem.status === undefined) problem.status = res.status
    const ra = res.headers.get('Retry-After')
    const err = new ApiError(res.status, problem, ra && /^\d+$/.test(ra) ? Number(ra) : null)
    if (res.status === 401 && !opts.quiet401 && onUnauthorized) onUnauthorized()
    throw err
  }
  return data as T
}

export const api = {
  get: <T>(path: string, query?: Query, opts: Omit<RequestOptions, 'query' | 'body'> = {}) =>
    request<T>('GET', path, { ...opts, query }),
  post: <T>(path: string, body?: unknown, opts: Omit<RequestOptions, 'body'> = {}) =>
    request<T>('POST', path, { ...opts, body }),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, { body }),
  patch: <T>(path: string, body?: unknown) => request<T>('PATCH', path, { body }),
  del: <T = void>(path: string) => request<T>('DELETE', path),
}
