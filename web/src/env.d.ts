/// <reference types="vite/client" />

declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}

declare module 'swagger-ui-dist/swagger-ui-es-bundle.js' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const SwaggerUIBundle: (options: Record<string, unknown>) => any
  export default SwaggerUIBundle
}
