import { currentLocale } from '@/i18n'

export function formatTime(s: string | null | undefined): string {
  if (!s) return '—'
  const d = new Date(s)
  if (Number.isNaN(d.getTime())) return s
  return d.toLocaleString(currentLocale() === 'en' ? 'en-GB' : 'zh-CN', { hour12: false })
}

/** Permission key → i18n key (dots are path separators in vue-i18n). */
export function permKey(p: string): string {
  return 'perm.' + p.replace(/\./g, '_')
}

export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: ReturnType<typeof setTimeout> | undefined
  return (...args: A) => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => fn(...args), ms)
  }
}

/**
 * Names the server writes in both languages as "中文 / English" (built-in
 * roles, permission descriptions) shown in the current language only.
 */
export function bilingual(s: string | null | undefined): string {
  if (!s) return ''
  const i = s.indexOf(' / ')
  if (i < 0) return s
  let zh = s.slice(0, i).trim()
  let en = s.slice(i + 3).trim()
  // Some server messages come the other way round ("English / 中文").
  const cjk = /[\u3400-\u9fff]/
  if (!cjk.test(zh) && cjk.test(en)) [zh, en] = [en, zh]
  return currentLocale() === 'en' ? en : zh
}
