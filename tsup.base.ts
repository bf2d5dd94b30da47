// The build every workspace package shares: ESM for Node 20, JavaScript only. Declarations come from
// `tsc -p tsconfig.build.json`, one file per module, exactly as written (tsup's bundled .d.ts drops Schema values
// that share a name with their type).
import type { Options } from "tsup"

export const library = (entry: Options["entry"] = ["src/index.ts"]): Options => ({
  entry,
  format: ["esm"],
  dts: false,
  tsconfig: "tsconfig.build.json",
  sourcemap: true,
  clean: true,
  target: "node20"
})
