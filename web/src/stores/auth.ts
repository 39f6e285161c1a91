import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, ApiError } from '@/api/client'
import type { Me } from '@/api/types'

export const useAuth = defineStore('auth', () => {
  const me = ref<Me | null>(null)
  /** True once GET /auth/me has been answered (either way). */
  const loaded = ref(false)

  const loggedIn = computed(() => me.value !== null)

  function can(permission: string | undefined): boolean {
    if (!permission) return true
    const m = me.value
    if (!m) return false
    // `a|b`: any of them.
    return permission.split('|').some((x) => m.permissions.includes(x))
  }

  async function fetchMe(): Promise<Me | null> {
    try {
      me.value = await api.get<Me>('/api/v1/auth/me', undefined, { quiet401: true })
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) me.value = null
      else throw e
    } finally {
      loaded.value = true
    }
    return me.value
  }

  async function login(tenant: string, login: string, password: string): Promise<Me> {
    const m = await api.post<Me>('/api/v1/auth/login', { tenant, login, password }, { quiet401: true })
    me.value = m
    loaded.value = true
    try {
      localStorage.setItem('xt_last_tenant', tenant)
    } catch {
      // ignore
    }
    return m
  }

  async function logout(everywhere = false): Promise<void> {
    try {
      await api.post(everywhere ? '/api/v1/auth/logout-all' : '/api/v1/auth/logout', undefined, { quiet401: true })
    } finally {
      me.value = null
    }
  }

  function clear(): void {
    me.value = null
  }

  return { me, loaded, loggedIn, can, fetchMe, login, logout, clear }
})
