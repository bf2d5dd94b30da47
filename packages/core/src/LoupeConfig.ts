/**
 * Where Loupe finds weights and keeps caches. Read from the environment by `layerConfig`
 * (`LOUPE_MODELS_DIR`, `LOUPE_CACHE_DIR`, `LOUPE_OFFLINE`) or given explicitly with `layer`.
 *
 * @since 0.1.0
 */
import { Config, Context, Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect"
import * as os from "node:os"
import * as path from "node:path"

/**
 * Loupe's configuration: the models folder, the cache folder and whether to stay offline.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoupeConfigShape {
  /** The folder holding offline model folders (e.g. `../shared/models`). */
  readonly modelsDir: string | undefined
  /** The folder for the embedding cache and downloaded weights. */
  readonly cacheDir: string
  /** Never reach the network when true. */
  readonly offline: boolean
}

/**
 * The cache folder used when none is configured: `~/.cache/loupe`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultCacheDir = (): string => path.join(os.homedir(), ".cache", "loupe")

/**
 * The configuration in use, as a service. `LoupeConfig.layer` provides it from explicit values (cache folder
 * `defaultCacheDir()`, online, no models folder by default); `LoupeConfig.layerConfig` from the environment.
 *
 * @since 0.1.0
 * @category services
 */
export class LoupeConfig extends Context.Tag("@loupe/core/LoupeConfig")<LoupeConfig, LoupeConfigShape>() {
  static readonly layer = (config: Partial<LoupeConfigShape>): Layer.Layer<LoupeConfig> =>
    Layer.succeed(LoupeConfig, {
      modelsDir: config.modelsDir,
      cacheDir: config.cacheDir ?? defaultCacheDir(),
      offline: config.offline ?? false
    })

  /**
   * The config from the environment, `overrides` winning. Fails with a `ConfigError` naming the variable when one is
   * malformed (for example `LOUPE_OFFLINE=maybe`).
   */
  static readonly layerConfig = (
    overrides: Partial<LoupeConfigShape> = {}
  ): Layer.Layer<LoupeConfig, ConfigError.ConfigError> =>
    Layer.effect(
      LoupeConfig,
      Effect.gen(function*() {
        const modelsDir = yield* Config.option(Config.string("LOUPE_MODELS_DIR"))
        const cacheDir = yield* Config.option(Config.string("LOUPE_CACHE_DIR"))
        const offline = yield* Config.withDefault(Config.boolean("LOUPE_OFFLINE"), false)
        return {
          modelsDir: overrides.modelsDir ?? Option.getOrUndefined(modelsDir),
          cacheDir: overrides.cacheDir ?? Option.getOrElse(cacheDir, defaultCacheDir),
          offline: overrides.offline ?? offline
        }
      })
    )
}
