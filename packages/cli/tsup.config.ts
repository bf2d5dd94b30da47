import { readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { defineConfig } from "tsup"
import { library } from "../../tsup.base.js"

/**
 * Native or optional runtime packages the standalone server entry leaves to `npm install` (everything else is
 * inlined). Their versions come from the workspace packages that depend on them, so the Docker context pins what
 * was tested.
 */
const native = ["sharp", "onnxruntime-node", "@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm", "@tensorflow/tfjs-node", "@huggingface/transformers"]

const pinned = (): Record<string, string> => {
  const versions: Record<string, string> = {}
  for (const pkg of ["../core/package.json", "../backbones/package.json", "../trainers/package.json", "../deploy/package.json", "./package.json"]) {
    const deps = (JSON.parse(readFileSync(pkg, "utf8")) as { dependencies?: Record<string, string> }).dependencies ?? {}
    for (const name of native) if (deps[name] !== undefined) versions[name] = deps[name]
  }
  return versions
}

/** A worker module of @loupe/backbones (built JavaScript): the inlined backbones start it from beside the entry. */
const runner = (name: string) => createRequire(import.meta.url).resolve(`@loupe/backbones/${name}`)

export default defineConfig([
  library(["src/index.ts", "src/cli.ts"]),
  {
    // The Docker image's server: one file with effect and @loupe/* inlined, and beside it the engines' worker
    // modules, inlined the same way (no shared chunks).
    entry: { serverEntry: "src/serverEntry.ts", ortRunner: runner("ortRunner"), tfjsRunner: runner("tfjsRunner") },
    splitting: false,
    format: ["esm"],
    dts: false,
    tsconfig: "tsconfig.build.json",
    sourcemap: false,
    clean: false,
    target: "node20",
    platform: "node",
    noExternal: [/^@loupe\//, /^effect$/, /^effect\//, /^@effect\//],
    external: native,
    // Inlined CommonJS dependencies call require(): give the ESM bundle one.
    banner: { js: "import { createRequire as __loupeCreateRequire } from 'node:module'; const require = __loupeCreateRequire(import.meta.url);" },
    onSuccess: async () => {
      writeFileSync("dist/serverEntry.json", JSON.stringify({ dependencies: pinned() }, null, 2) + "\n")
    }
  }
])
