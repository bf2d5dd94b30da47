import * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import * as path from "node:path"

export const defaultHubUrl = "https://huggingface.co"

/** The hub to use when none is given: `$HF_ENDPOINT` (as `huggingface_hub` reads it), else `defaultHubUrl`. */
export const hubUrlFromEnv = (): string => process.env["HF_ENDPOINT"] || defaultHubUrl

/** `hf:org/name` or `hf:org/name@revision`, parsed; undefined for any other id. */
export const parseHubId = (id: string): { readonly repo: string; readonly revision: string | undefined } | undefined => {
  const match = /^hf:([^@]+)(?:@(.+))?$/.exec(id)
  if (match === null || !isHubRepo(match[1]!)) return undefined
  return { repo: match[1]!, revision: match[2] }
}

/** `org/name` or `name`: letters, digits, `-`, `_`, `.`; no `..`. */
export const isHubRepo = (repo: string): boolean => /^[\w.-]+(\/[\w.-]+)?$/.test(repo) && !repo.includes("..")

/** Where downloaded hub files are kept: `<cacheDir>/transformers/<org>/<name>/<revision>/`. */
export const hubCacheFolder = (cacheDir: string, repo: string, revision: string): string =>
  path.join(cacheDir, "transformers", ...repo.split("/"), encodeURIComponent(revision))

/** Where a user may place a hub model by hand: `<modelsDir>/<org>/<name>/`. */
export const modelsDirFolder = (modelsDir: string | undefined, repo: string): string | undefined =>
  modelsDir === undefined ? undefined : path.join(modelsDir, ...repo.split("/"))

export const hubFileUrl = (hubUrl: string, repo: string, revision: string, file: string): string =>
  `${hubUrl.replace(/\/+$/, "")}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split("/").map(encodeURIComponent).join("/")}`

/** A folder that looks like a model: it has `config.json`. */
export const hasModel = (folder: string | undefined): Effect.Effect<boolean, never, FileSystem.FileSystem> =>
  folder === undefined ? Effect.succeed(false) : exists(path.join(folder, "config.json"))

/** Whether `file` exists; an unreadable path counts as absent. */
export const exists = (file: string): Effect.Effect<boolean, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(file)).pipe(Effect.orElseSucceed(() => false))
