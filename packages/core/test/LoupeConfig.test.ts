import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { LoupeConfig } from "@loupe/core"

const fromEnv = (env: Record<string, string>, overrides: Parameters<typeof LoupeConfig.LoupeConfig.layerConfig>[0] = {}) =>
  LoupeConfig.LoupeConfig.pipe(
    Effect.provide(LoupeConfig.LoupeConfig.layerConfig(overrides)),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

describe("LoupeConfig.layerConfig", () => {
  it.effect("reads the environment, overrides winning", () =>
    Effect.gen(function*() {
      const config = yield* fromEnv({ LOUPE_MODELS_DIR: "/m", LOUPE_CACHE_DIR: "/c", LOUPE_OFFLINE: "true" }, { cacheDir: "/o" })
      expect(config).toEqual({ modelsDir: "/m", cacheDir: "/o", offline: true })
    }))

  it.effect("fails with a typed ConfigError naming a malformed variable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(fromEnv({ LOUPE_OFFLINE: "maybe" }))
      expect(error._op).toBe("InvalidData")
      expect(String(error)).toContain("LOUPE_OFFLINE")
    }))
})
