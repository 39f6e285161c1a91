import type { Component } from 'vue'
import { Document, House, OfficeBuilding, Key, List, Lock, Tickets, Upload, User, UserFilled } from '@element-plus/icons-vue'

export interface NavItem {
  name: string
  path: string
  label: string
  icon: Component
  permission?: string
}

/** Side navigation; each entry is shown only with its permission. */
export const NAV: NavItem[] = [
  { name: 'home', path: '/', label: 'nav.home', icon: House },
  { name: 'people', path: '/people', label: 'nav.people', icon: UserFilled, permission: 'people.read' },
  { name: 'import', path: '/import', label: 'nav.import', icon: Upload, permission: 'import.run' },
  { name: 'roles', path: '/roles', label: 'nav.roles', icon: Lock, permission: 'roles.read' },
  { name: 'audit', path: '/audit', label: 'nav.audit', icon: Tickets, permission: 'audit.read' },
  { name: 'tokens', path: '/tokens', label: 'nav.tokens', icon: Key, permission: 'tokens.manage' },
  { name: 'jobs', path: '/jobs', label: 'nav.jobs', icon: List, permission: 'jobs.read' },
  { name: 'tenants', path: '/tenants', label: 'nav.tenants', icon: OfficeBuilding, permission: 'tenants.manage' },
  { name: 'api-docs', path: '/api-docs', label: 'nav.apiDocs', icon: Document },
  { name: 'profile', path: '/profile', label: 'nav.profile', icon: User },
]
