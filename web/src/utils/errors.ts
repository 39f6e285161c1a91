import { ElMessage } from 'element-plus'
import { ApiError, NetworkError } from '@/api/client'
import { i18n } from '@/i18n'

/** A short title for a problem: localized by status where we know it. */
export function problemTitle(e: ApiError): string {
  const { t, te } = i18n.global
  const key = `common.status.s${e.status}`
  if (te(key)) return t(key)
  return e.problem.title || t('common.requestFailed', { status: e.status })
}

/** A readable one-line message for any error thrown by the API client. */
export function errorMessage(e: unknown): string {
  const t = i18n.global.t
  if (e instanceof ApiError) {
    const p = e.problem
    let msg = p.detail || problemTitle(e)
    if (p.detail && e.status !== 401 && e.status !== 429) msg = `${problemTitle(e)}: ${p.detail}`
    if (e.status === 429 && e.retryAfter) {
      msg +=
        ' ' +
        (e.retryAfter >= 120
          ? t('common.retryAfterMin', { n: Math.ceil(e.retryAfter / 60) })
          : t('common.retryAfter', { n: e.retryAfter }))
    }
    return msg
  }
  if (e instanceof NetworkError) return t('common.networkError')
  if (e instanceof Error) return e.message
  return String(e)
}

/** Field errors of a problem+json answer, or {} for anything else. */
export function fieldErrors(e: unknown): Record<string, string> {
  return e instanceof ApiError ? e.fieldErrors : {}
}

/** Shows an error as a toast (unless it is a 401, which sends to log-in). */
export function showError(e: unknown): void {
  if (e instanceof ApiError && e.status === 401) return
  ElMessage({ type: 'error', message: errorMessage(e), showClose: true, duration: 6000 })
}
