import { defineConfig } from "tsup"

export default defineConfig({
  entry: ["src/index.ts", "src/cli.ts"],
  format: ["esm"],
  // Declarations for the library entry only; the CLI entry has no exports.
  dts: { entry: "src/index.ts" },
  tsconfig: "tsconfig.build.json",
  sourcemap: true,
  clean: true,
  target: "node20"
})
