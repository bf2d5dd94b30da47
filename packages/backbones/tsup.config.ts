import { defineConfig } from "tsup"
import { library } from "../../tsup.base.js"

// The engines' worker modules are entry points of their own: `internal/workerThread.ts` starts `dist/<name>.js`.
export default defineConfig(library({
  index: "src/index.ts",
  ortRunner: "src/internal/ortRunner.ts",
  tfjsRunner: "src/internal/tfjsRunner.ts"
}))
