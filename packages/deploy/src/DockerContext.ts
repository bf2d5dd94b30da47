/**
 * Export a model bundle as a Docker build context: a folder that `docker build` turns into an image serving the
 * model over HTTP (the function API's routes, read-only, with API keys, limits and graceful shutdown).
 *
 * ```
 * <out>/
 *   Dockerfile        node:20 slim; installs only the native packages; runs as the `node` user
 *   .dockerignore
 *   package.json      the native runtime packages, pinned to the versions Loupe was tested with
 *   server.mjs        the standalone server (the caller's `ServerEntry`, every pure-JS dependency inlined)
 *   ortRunner.js      the onnxruntime and TensorFlow.js engines' worker modules (the entry's `workers`), which
 *   tfjsRunner.js     the server starts from beside itself
 *   bundle/           the model bundle
 *   models/           the weights of the bundle's backbones (all of them, for a multi-backbone bundle), laid out
 *                     as a models directory
 *   README.md         build, run and call it
 *   .loupe-output.json  what Loupe wrote here, so that a later export may replace it (see `KIND`)
 * ```
 *
 * The server is built by the caller (the CLI builds one that registers the built-in plugins) and handed in as a
 * `ServerEntry` with the plugins it registers, so a bundle whose backbone or head is not among them is refused
 * (`NotExportable`), as are weights that are not files Loupe can copy (hub models). API keys are not baked
 * into the image: mount a key file (`loupe keys create --file keys.json`) at run time.
 *
 * @since 0.1.0
 */
import { Bundle, LoupeConfig, OutputFolder, Registry } from "@loupe/core"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import * as path from "node:path"
import { DeployError } from "./DeployError.js"

/**
 * The kind of output a Docker build context is (see `OutputFolder` in `@loupe/core`): `write` replaces an earlier
 * context, and nothing else.
 *
 * @since 0.2.0
 * @category constants
 */
export const KIND = "loupe-docker-context"

/**
 * Options of `write`: the port the image listens on and the function id it serves the model as.
 *
 * @since 0.1.0
 * @category models
 */
export interface DockerContextOptions {
  /** The port the image listens on. Default 8080. */
  readonly port?: number
  /** The function id the image serves the model as (default: the bundle's own, else `model`). */
  readonly functionId?: string
}

/**
 * The image's server: one built ESM file that serves `./bundle` beside it (configured by the environment, see
 * `ServeBundle.fromEnvironment`), with every pure-JavaScript dependency inlined.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerEntry {
  readonly file: string
  /** The native packages it needs installed beside it, pinned to the versions it was built against. */
  readonly dependencies: Readonly<Record<string, string>>
  /** The plugins it registers: the bundles it can serve. */
  readonly plugins: Registry.Plugins
  /** The engines' worker modules it starts from beside itself (`ortRunner.js`, `tfjsRunner.js`), copied next to it. */
  readonly workers: ReadonlyArray<string>
}

/**
 * What was written.
 *
 * @since 0.1.0
 * @category models
 */
export interface DockerContextInfo {
  readonly dir: string
  /** Every file of the context, relative to it, sorted. */
  readonly files: ReadonlyArray<string>
  /** The bundle's backbones (more than one for a multi-backbone pipeline), whose weights the context carries. */
  readonly backbones: ReadonlyArray<string>
  readonly dependencies: Readonly<Record<string, string>>
}

const failed = (file: string, message: string, cause?: unknown) =>
  new DeployError({ reason: "ExportFailed", file, message, cause })

/** The native packages each backbone runtime needs in the image. */
const runtimePackages: Readonly<Record<string, ReadonlyArray<string>>> = {
  onnx: [],
  tfjs: ["@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm"],
  transformers: ["@huggingface/transformers"]
}

const dockerfile = (port: number, functionId: string) => `# Built by \`loupe export --format docker\`. Build: docker build -t my-model .
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
COPY server.mjs ortRunner.js tfjsRunner.js ./
COPY bundle ./bundle
COPY models ./models
COPY cache ./cache
ENV HOST=0.0.0.0 PORT=${port} LOUPE_FUNCTION_ID=${JSON.stringify(functionId)} LOUPE_MODELS_DIR=/app/models LOUPE_CACHE_DIR=/app/cache LOUPE_OFFLINE=1 LOUPE_KEYS_FILE=/app/keys/keys.json
USER node
EXPOSE ${port}
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# SIGTERM drains requests in flight before the process exits.
STOPSIGNAL SIGTERM
CMD ["node", "server.mjs"]
`

const readme = (functionId: string, port: number) => `# A Loupe model, ready to build

\`\`\`sh
docker build -t my-model .
loupe keys create --file keys/keys.json          # prints the key once; only its hash is stored
docker run --rm -p ${port}:${port} -v "$PWD/keys:/app/keys:ro" my-model
\`\`\`

Then:

\`\`\`sh
curl -s http://127.0.0.1:${port}/v1/functions/${functionId}/invoke \\
  -H "Authorization: Bearer $KEY" -H "Content-Type: image/jpeg" --data-binary @photo.jpg
\`\`\`

The server answers the function API's read routes and \`invoke\` (\`/openapi.json\` describes them); it is read-only.
Environment: \`PORT\`, \`LOUPE_RATE_LIMIT\` (requests/s per key), \`LOUPE_MAX_IMAGE_BYTES\`, \`LOUPE_MAX_PIXELS\`,
\`LOUPE_KEYS_FILE\`. Without Docker: \`npm install && LOUPE_KEYS_FILE=keys/keys.json node server.mjs\`.
`

/** Files under `dir`, relative, sorted. */
const listFiles = (fs: FileSystem.FileSystem, dir: string) =>
  Effect.gen(function*() {
    const all = yield* fs.readDirectory(dir, { recursive: true })
    const kinds = yield* Effect.forEach(all, (name) => Effect.map(fs.stat(path.join(dir, name)), (info) => info.type), {
      concurrency: 16
    })
    return all.filter((_, i) => kinds[i] !== "Directory").sort()
  })

/**
 * Write the build context for the bundle in `bundleDir` to `outDir` (atomically: a reader never sees half of it),
 * with `entry` as its server. Needs the registry (to find the backbone's weights) and the config that locates them.
 * `outDir` must be missing, empty or an earlier Docker context (see `KIND`); anything else fails with `ExportFailed`
 * naming it, and nothing in it is touched.
 *
 * @since 0.1.0
 * @category exports
 */
export const write = (
  bundleDir: string,
  outDir: string,
  entry: ServerEntry,
  options: DockerContextOptions = {}
): Effect.Effect<DockerContextInfo, DeployError, Registry.Registry | LoupeConfig.LoupeConfig | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const manifest = yield* Bundle.readManifest(bundleDir).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", file: e.file ?? bundleDir, message: e.message, cause: e }))
    )
    const refs = [
      { field: "backbone", id: manifest.backbone.id },
      ...(manifest.extraBackbones ?? []).map((b, i) => ({ field: `extraBackbones.${i}`, id: b.id }))
    ]
    if (!(entry.plugins.heads ?? []).some((h) => h.kind === manifest.head.kind)) {
      return yield* new DeployError({
        reason: "NotExportable",
        field: "head.kind",
        message: `The image serves built-in heads only, and ${manifest.head.kind} is not one`
      })
    }
    const config = yield* LoupeConfig.LoupeConfig
    const backbones = yield* Effect.forEach(refs, ({ field, id }) =>
      Effect.gen(function*() {
        if (!(entry.plugins.backbones ?? []).some((p) => p.info.id === id)) {
          return yield* new DeployError({
            reason: "NotExportable",
            field: `${field}.id`,
            message: `The image serves built-in backbones only, and ${id} is not one; export it as a bundle or ONNX instead`
          })
        }
        const plugin = yield* Effect.flatMap(Registry.Registry, (r) => r.backbone(id)).pipe(
          Effect.mapError((e) => new DeployError({ reason: "BundleFailed", field: `${field}.id`, message: e.message, cause: e }))
        )
        const weights = plugin.info.weights
        // Where the weights are now, and where the image keeps them (its models directory, or its download cache).
        const source = weights._tag === "ModelsDir" && config.modelsDir !== undefined
          ? { from: path.resolve(config.modelsDir, weights.path), to: path.join("models", weights.path) }
          : weights._tag === "Url"
          ? { from: path.join(config.cacheDir, "models", weights.file), to: path.join("cache", "models", weights.file) }
          : undefined
        if (source === undefined) {
          return yield* new DeployError({
            reason: "NotExportable",
            field: `${field}.weights`,
            message: weights._tag === "ModelsDir"
              ? `${id} needs ${weights.path} from a models directory: pass --models-dir or set LOUPE_MODELS_DIR`
              : weights._tag === "Hub"
              ? `${id} loads its weights from the hub (${weights.repo}), which the image cannot carry`
              : `${id} loads its weights from the path ${weights._tag === "Path" ? weights.path : weights.url}, which the image cannot carry`
          })
        }
        return { id, runtime: plugin.info.runtime, source }
      }))
    const pinned = entry.dependencies
    const wanted = [...new Set(["sharp", "onnxruntime-node", ...backbones.flatMap((b) => runtimePackages[b.runtime] ?? [])])]
    const dependencies = Object.fromEntries(wanted.map((name) => [name, pinned[name] ?? "*"]))
    const port = options.port ?? 8080
    const functionId = options.functionId ??
      ((manifest.metadata as { readonly functionId?: unknown } | undefined)?.functionId as string | undefined) ??
      "model"

    const target = path.resolve(outDir)
    const build = (staging: string) => {
      const staged = (name: string) => path.join(staging, name)
      return Effect.gen(function*() {
        yield* fs.makeDirectory(staged("models"), { recursive: true })
        yield* fs.makeDirectory(staged("cache/models"), { recursive: true })
        yield* fs.copy(bundleDir, staged("bundle"))
        for (const { source } of backbones) {
          yield* fs.makeDirectory(path.dirname(staged(source.to)), { recursive: true })
          yield* fs.copy(source.from, staged(source.to))
        }
        yield* fs.copyFile(entry.file, staged("server.mjs"))
        for (const worker of entry.workers) yield* fs.copyFile(worker, staged(path.basename(worker)))
        const pkg = { name: "loupe-model", private: true, type: "module", main: "server.mjs", dependencies }
        yield* fs.writeFileString(staged("package.json"), JSON.stringify(pkg, null, 2) + "\n")
        yield* fs.writeFileString(staged("Dockerfile"), dockerfile(port, functionId))
        yield* fs.writeFileString(staged(".dockerignore"), "node_modules\nkeys\n*.log\n")
        yield* fs.writeFileString(staged("README.md"), readme(functionId, port))
      }).pipe(Effect.mapError((cause) => failed(target, `Cannot write the Docker context ${target}: ${cause.message}`, cause)))
    }
    // Replaces only an earlier Docker context, never a folder holding anything else.
    yield* OutputFolder.write(target, KIND, build).pipe(
      Effect.mapError((e) => (e._tag === "CoreError" ? failed(e.file ?? target, e.message, e) : e))
    )
    const files = yield* listFiles(fs, target).pipe(
      Effect.mapError((cause) => failed(target, `Cannot list the Docker context ${target}: ${cause.message}`, cause))
    )
    return { dir: target, files, backbones: backbones.map((b) => b.id), dependencies }
  })
