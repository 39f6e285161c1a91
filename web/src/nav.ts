import type { Component } from 'vue'
import {
  Bell,
  Checked,
  Coin,
  DataAnalysis,
  Goods,
  Notebook,
  Wallet,
  Switch,
  Tools,
  ChatLineSquare,
  Connection,
  Document,
  EditPen,
  Files,
  House,
  Key,
  List,
  Lock,
  OfficeBuilding,
  Setting,
  Tickets,
  Upload,
  User,
  UserFilled,
} from '@element-plus/icons-vue'

export interface NavItem {
  name: string
  path: string
  label: string
  icon: Component
  /** A permission, or several separated by `|` (any of them). */
  permission?: string
}

/** Side navigation; each entry is shown only with its permission. */
export const NAV: NavItem[] = [
  { name: 'home', path: '/', label: 'nav.home', icon: House },
  { name: 'inbox', path: '/inbox', label: 'nav.inbox', icon: Bell },
  { name: 'compose', path: '/messages/new', label: 'nav.compose', icon: EditPen, permission: 'messages.send' },
  { name: 'messages', path: '/messages', label: 'nav.messages', icon: ChatLineSquare, permission: 'messages.send|messages.read' },
  { name: 'templates', path: '/templates', label: 'nav.templates', icon: Files, permission: 'messages.manage' },
  { name: 'channels', path: '/channels', label: 'nav.channels', icon: Connection, permission: 'messages.manage' },
  { name: 'lessons-attendance', path: '/lessons/attendance', label: 'lessons.nav.attendance', icon: Checked, permission: 'lessons.checkin' },
  { name: 'lessons-mine', path: '/lessons/mine', label: 'lessons.nav.mine', icon: Coin, permission: 'lessons.read' },
  { name: 'lessons-courses', path: '/lessons/courses', label: 'lessons.nav.courses', icon: Notebook, permission: 'lessons.manage' },
  { name: 'lessons-packages', path: '/lessons/packages', label: 'lessons.nav.packages', icon: Goods, permission: 'lessons.manage' },
  { name: 'lessons-accounts', path: '/lessons/accounts', label: 'lessons.nav.accounts', icon: Wallet, permission: 'lessons.manage' },
  { name: 'lessons-transfers', path: '/lessons/transfers', label: 'lessons.nav.transfers', icon: Switch, permission: 'lessons.manage' },
  { name: 'lessons-reports', path: '/lessons/reports', label: 'lessons.nav.reports', icon: DataAnalysis, permission: 'lessons.reports' },
  { name: 'lessons-settings', path: '/lessons/settings', label: 'lessons.nav.settings', icon: Tools, permission: 'lessons.manage' },
  { name: 'people', path: '/people', label: 'nav.people', icon: UserFilled, permission: 'people.read' },
  { name: 'import', path: '/import', label: 'nav.import', icon: Upload, permission: 'import.run' },
  { name: 'roles', path: '/roles', label: 'nav.roles', icon: Lock, permission: 'roles.read' },
  { name: 'audit', path: '/audit', label: 'nav.audit', icon: Tickets, permission: 'audit.read' },
  { name: 'tokens', path: '/tokens', label: 'nav.tokens', icon: Key, permission: 'tokens.manage' },
  { name: 'jobs', path: '/jobs', label: 'nav.jobs', icon: List, permission: 'jobs.read' },
  { name: 'tenants', path: '/tenants', label: 'nav.tenants', icon: OfficeBuilding, permission: 'tenants.manage' },
  { name: 'api-docs', path: '/api-docs', label: 'nav.apiDocs', icon: Document },
  { name: 'preferences', path: '/preferences', label: 'nav.preferences', icon: Setting },
  { name: 'profile', path: '/profile', label: 'nav.profile', icon: User },
]
