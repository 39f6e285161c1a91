import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '@/api/client'

/**
 * The unread count of the logged-in user's inbox, kept live by the server's
 * event stream (GET /api/v1/inbox/stream: an `unread` event on connect and
 * whenever something arrives). A closed stream is reopened after a pause.
 */
export const useInbox = defineStore('inbox', () => {
  const unread = ref(0)
  /** Bumped on every event, so that pages showing the inbox can reload. */
  const version = ref(0)
  let source: EventSource | null = null
  let retry: ReturnType<typeof setTimeout> | undefined
  let wanted = false

  function set(n: number) {
    if (n !== unread.value) version.value++
    unread.value = n
  }

  async function refresh(): Promise<void> {
    try {
      const r = await api.get<{ unread: number }>('/api/v1/inbox/unread', undefined, { quiet401: true })
      set(r.unread)
    } catch {
      // The stream or the next page load will tell.
    }
  }

  function open() {
    if (source) return
    const es = new EventSource('/api/v1/inbox/stream', { withCredentials: true })
    source = es
    es.addEventListener('unread', (ev) => {
      try {
        const data = JSON.parse((ev as MessageEvent<string>).data) as { unread: number }
        set(data.unread)
      } catch {
        // ignore a malformed event
      }
    })
    es.onerror = () => {
      // The browser reconnects by itself unless the stream was refused.
      if (es.readyState === EventSource.CLOSED) {
        source = null
        if (wanted) {
          clearTimeout(retry)
          retry = setTimeout(() => {
            if (wanted) {
              refresh()
              open()
            }
          }, 10_000)
        }
      }
    }
  }

  // The stream tells of arrivals only; reads on another device or tab show
  // when this one comes back into view.
  function onVisible() {
    if (document.visibilityState === 'visible') refresh()
  }

  function start() {
    wanted = true
    open()
    document.addEventListener('visibilitychange', onVisible)
  }

  function stop() {
    wanted = false
    document.removeEventListener('visibilitychange', onVisible)
    clearTimeout(retry)
    source?.close()
    source = null
    unread.value = 0
  }

  return { unread, version, refresh, start, stop, set }
})
