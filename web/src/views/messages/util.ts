import { ApiError } from '@/api/client'
import { bilingual } from '@/utils/format'

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}

/**
 * Field errors of a problem, in the current language, keyed by field. Several
 * messages for one field (a template with two unknown variables) are joined.
 */
export function fieldMessages(e: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (!(e instanceof ApiError)) return out
  for (const fe of e.problem.errors ?? []) {
    if (!fe?.field) continue
    const msg = bilingual(fe.message)
    out[fe.field] = out[fe.field] ? `${out[fe.field]}; ${msg}` : msg
  }
  return out
}

/** Field errors whose name starts with `prefix` (audience.include[0] …). */
export function errorsUnder(errs: Record<string, string>, prefix: string): string {
  return Object.entries(errs)
    .filter(([k]) => k === prefix || k.startsWith(prefix + '.') || k.startsWith(prefix + '['))
    .map(([, v]) => v)
    .join('; ')
}

/** The problem's detail in the current language. */
export function problemText(e: unknown): string {
  if (e instanceof ApiError) return bilingual(e.problem.detail || e.problem.title || '')
  return e instanceof Error ? e.message : String(e)
}

export function triggerDownload(url: string): void {
  const a = document.createElement('a')
  a.href = url
  a.rel = 'noopener'
  document.body.appendChild(a)
  a.click()
  a.remove()
}
