import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { setUnauthorizedHandler } from '@/api/client'
import { useAuth } from '@/stores/auth'
import AppLayout from '@/layouts/AppLayout.vue'
import LoginView from '@/views/LoginView.vue'

declare module 'vue-router' {
  interface RouteMeta {
    public?: boolean
    permission?: string
    title?: string
  }
}

const routes: RouteRecordRaw[] = [
  { path: '/login', name: 'login', component: LoginView, meta: { public: true, title: 'login.title' } },
  {
    path: '/',
    component: AppLayout,
    children: [
      { path: '', name: 'home', component: () => import('@/views/HomeView.vue'), meta: { title: 'nav.home' } },
      {
        path: 'change-password',
        name: 'change-password',
        component: () => import('@/views/ChangePasswordView.vue'),
        meta: { title: 'password.title' },
      },
      {
        path: 'inbox',
        name: 'inbox',
        component: () => import('@/views/messages/InboxView.vue'),
        meta: { title: 'nav.inbox' },
      },
      {
        path: 'messages',
        name: 'messages',
        component: () => import('@/views/messages/MessagesView.vue'),
        meta: { permission: 'messages.send|messages.read', title: 'nav.messages' },
      },
      {
        path: 'messages/new',
        name: 'compose',
        component: () => import('@/views/messages/ComposeView.vue'),
        meta: { permission: 'messages.send', title: 'nav.compose' },
      },
      {
        path: 'messages/:id(\\d+)/edit',
        name: 'message-edit',
        component: () => import('@/views/messages/ComposeView.vue'),
        meta: { permission: 'messages.send', title: 'nav.compose' },
      },
      {
        path: 'messages/:id(\\d+)',
        name: 'message',
        component: () => import('@/views/messages/MessageDetailView.vue'),
        meta: { permission: 'messages.send|messages.read', title: 'nav.messages' },
      },
      {
        path: 'templates',
        name: 'templates',
        component: () => import('@/views/messages/TemplatesView.vue'),
        meta: { permission: 'messages.manage', title: 'nav.templates' },
      },
      {
        path: 'templates/:id(\\d+|new)',
        name: 'template',
        component: () => import('@/views/messages/TemplatesView.vue'),
        meta: { permission: 'messages.manage', title: 'nav.templates' },
      },
      {
        path: 'channels',
        name: 'channels',
        component: () => import('@/views/messages/ChannelsView.vue'),
        meta: { permission: 'messages.manage', title: 'nav.channels' },
      },
      {
        path: 'preferences',
        name: 'preferences',
        component: () => import('@/views/messages/PreferencesView.vue'),
        meta: { title: 'nav.preferences' },
      },
      {
        path: 'lessons/attendance',
        name: 'lessons-attendance',
        component: () => import('@/views/lessons/AttendanceView.vue'),
        meta: { permission: 'lessons.checkin', title: 'lessons.nav.attendance' },
      },
      {
        path: 'lessons/attendance/:id(\\d+)',
        name: 'lessons-sheet',
        component: () => import('@/views/lessons/AttendanceView.vue'),
        meta: { permission: 'lessons.checkin', title: 'lessons.nav.attendance' },
      },
      {
        path: 'lessons/mine',
        name: 'lessons-mine',
        component: () => import('@/views/lessons/MyLessonsView.vue'),
        meta: { permission: 'lessons.read', title: 'lessons.nav.mine' },
      },
      {
        path: 'lessons/courses',
        name: 'lessons-courses',
        component: () => import('@/views/lessons/CoursesView.vue'),
        meta: { permission: 'lessons.manage', title: 'lessons.nav.courses' },
      },
      {
        path: 'lessons/packages',
        name: 'lessons-packages',
        component: () => import('@/views/lessons/PackagesView.vue'),
        meta: { permission: 'lessons.manage', title: 'lessons.nav.packages' },
      },
      {
        path: 'lessons/accounts',
        name: 'lessons-accounts',
        component: () => import('@/views/lessons/AccountsView.vue'),
        meta: { permission: 'lessons.manage', title: 'lessons.nav.accounts' },
      },
      {
        path: 'lessons/accounts/:id(\\d+)',
        name: 'lessons-student',
        component: () => import('@/views/lessons/AccountsView.vue'),
        meta: { permission: 'lessons.manage', title: 'lessons.nav.accounts' },
      },
      {
        path: 'lessons/transfers',
        name: 'lessons-transfers',
        component: () => import('@/views/lessons/TransfersView.vue'),
        meta: { permission: 'lessons.manage', title: 'lessons.nav.transfers' },
      },
      {
        path: 'lessons/settings',
        name: 'lessons-settings',
        component: () => import('@/views/lessons/SettingsView.vue'),
        meta: { permission: 'lessons.manage', title: 'lessons.nav.settings' },
      },
      {
        path: 'lessons/reports',
        name: 'lessons-reports',
        component: () => import('@/views/lessons/ReportsView.vue'),
        meta: { permission: 'lessons.reports', title: 'lessons.nav.reports' },
      },
      {
        path: 'people',
        name: 'people',
        component: () => import('@/views/PeopleView.vue'),
        meta: { permission: 'people.read', title: 'nav.people' },
      },
      {
        path: 'people/:id(\\d+)',
        name: 'person',
        component: () => import('@/views/PeopleView.vue'),
        meta: { permission: 'people.read', title: 'nav.people' },
      },
      {
        path: 'import',
        name: 'import',
        component: () => import('@/views/ImportView.vue'),
        meta: { permission: 'import.run', title: 'nav.import' },
      },
      {
        path: 'roles',
        name: 'roles',
        component: () => import('@/views/RolesView.vue'),
        meta: { permission: 'roles.read', title: 'nav.roles' },
      },
      {
        path: 'audit',
        name: 'audit',
        component: () => import('@/views/AuditView.vue'),
        meta: { permission: 'audit.read', title: 'nav.audit' },
      },
      {
        path: 'tokens',
        name: 'tokens',
        component: () => import('@/views/TokensView.vue'),
        meta: { permission: 'tokens.manage', title: 'nav.tokens' },
      },
      {
        path: 'jobs',
        name: 'jobs',
        component: () => import('@/views/JobsView.vue'),
        meta: { permission: 'jobs.read', title: 'nav.jobs' },
      },
      {
        path: 'tenants',
        name: 'tenants',
        component: () => import('@/views/TenantsView.vue'),
        meta: { permission: 'tenants.manage', title: 'nav.tenants' },
      },
      { path: 'api-docs', name: 'api-docs', component: () => import('@/views/ApiDocsView.vue'), meta: { title: 'nav.apiDocs' } },
      { path: 'profile', name: 'profile', component: () => import('@/views/ProfileView.vue'), meta: { title: 'nav.profile' } },
      { path: ':pathMatch(.*)*', name: 'not-found', component: () => import('@/views/NotFoundView.vue') },
    ],
  },
]

export const router = createRouter({
  history: createWebHistory(),
  routes,
})

router.beforeEach(async (to) => {
  const auth = useAuth()
  if (!auth.loaded) {
    try {
      await auth.fetchMe()
    } catch {
      // Server unreachable: the log-in page will show the error on submit.
    }
  }
  if (to.meta.public) {
    if (to.name === 'login' && auth.loggedIn) return { path: '/' }
    return true
  }
  if (!auth.loggedIn) {
    return { name: 'login', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  }
  if (auth.me?.must_change_password && to.name !== 'change-password') {
    return { name: 'change-password' }
  }
  if (to.meta.permission && !auth.can(to.meta.permission)) {
    return { name: 'home', query: { forbidden: '1' } }
  }
  return true
})

setUnauthorizedHandler(() => {
  const auth = useAuth()
  auth.clear()
  const current = router.currentRoute.value
  if (current.name !== 'login') {
    router.push({ name: 'login', query: current.fullPath !== '/' ? { redirect: current.fullPath } : {} })
  }
})
