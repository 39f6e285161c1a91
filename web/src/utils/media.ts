import { onBeforeUnmount, onMounted, ref } from 'vue'

/** Reactive "is this a phone-sized screen" flag (≤ 768 px). */
export function useIsMobile() {
  const query = window.matchMedia('(max-width: 768px)')
  const isMobile = ref(query.matches)
  const update = () => (isMobile.value = query.matches)
  onMounted(() => query.addEventListener('change', update))
  onBeforeUnmount(() => query.removeEventListener('change', update))
  return isMobile
}
