/**
 * Datasets: samples from a folder per label (`<dir>/<label>/*`), split folders (`<dir>/train`, `<dir>/test`), a
 * CSV or JSONL manifest, or an in-memory list; streams of samples; and the checks a training set must pass before
 * any embedding starts.
 *
 * Files that cannot be samples (a `notes.txt`, a missing manifest entry) are listed in `skipped` with the reason,
 * so one stray file never stops a run. Whether an image file actually decodes is found out later, when it is
 * decoded.
 *
 * @since 0.1.0
 */
import { FileSystem } from "@effect/platform"
import type { Error as PlatformError } from "@effect/platform"
import { Effect, Either, Stream } from "effect"
import * as path from "node:path"
import { CoreError } from "./CoreError.js"
import * as Csv from "./internal/Csv.js"
import type { ImageSource, Sample } from "./Sample.js"

/**
 * A file that was not made a sample, and why.
 *
 * @since 0.1.0
 * @category models
 */
export interface SkippedFile {
  readonly file: string
  readonly reason: string
}

/**
 * A labelled (or partly unlabelled) set of images: its labels, its samples and the files passed over while building
 * it. Build one with `fromFolder`, `fromSplitFolders`, `fromManifest`, `fromList` or `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Dataset {
  /**
   * Sorted, distinct: the samples' labels, or for multi-label data their tags. Folder datasets include label folders
   * that hold no images.
   */
  readonly labels: ReadonlyArray<string>
  /** In a deterministic order: sorted by path for folders, as written for manifests and lists. */
  readonly samples: ReadonlyArray<Sample>
  readonly skipped: ReadonlyArray<SkippedFile>
}

/**
 * A training set and, when the folder has one, a test set.
 *
 * @since 0.1.0
 * @category models
 */
export interface Split {
  readonly train: Dataset
  readonly test: Dataset | undefined
}

/**
 * File extensions taken as images in folders: those of the formats Loupe reads (JPEG, PNG, GIF and WebP, the ones
 * its server accepts; see `ImageCheck`). Whatever a file is called, its bytes are checked when it is read.
 *
 * Lower-case, with the dot.
 *
 * @since 0.1.0
 * @category constants
 */
export const imageExtensions: ReadonlySet<string> = new Set([".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif"])

/** Image formats Loupe does not read; such files are skipped with a reason that says so. */
const unsupported: ReadonlySet<string> = new Set([
  ".tif",
  ".tiff",
  ".avif",
  ".svg",
  ".bmp",
  ".heic",
  ".heif",
  ".jxl",
  ".jp2",
  ".ico",
  ".psd",
  ".raw"
])

/** Names left out of folder walks silently: hidden files and folders, and OS litter. */
const isIgnored = (name: string): boolean =>
  name.startsWith(".") || name === "__MACOSX" || name === "Thumbs.db" || name === "desktop.ini"

/**
 * Whether a file name has an image extension (see `imageExtensions`).
 *
 * @since 0.1.0
 * @category utils
 */
export const isImageFile = (file: string): boolean => imageExtensions.has(path.extname(file).toLowerCase())

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Build a dataset from samples. `labels` adds labels that have no samples (e.g. an empty label folder); the result's
 * labels are the sorted union of those and the samples' labels and tags.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  samples: ReadonlyArray<Sample>,
  options: { readonly labels?: Iterable<string>; readonly skipped?: ReadonlyArray<SkippedFile> } = {}
): Dataset => {
  const labels = new Set(options.labels ?? [])
  for (const sample of samples) {
    if (sample.label !== undefined) labels.add(sample.label)
    for (const tag of sample.tags ?? []) labels.add(tag)
  }
  return { labels: [...labels].sort(byName), samples, skipped: options.skipped ?? [] }
}

/**
 * The samples of a dataset as a Stream.
 *
 * @since 0.1.0
 * @category utils
 */
export const stream = (dataset: Dataset): Stream.Stream<Sample> => Stream.fromIterable(dataset.samples)

/**
 * How many samples each label has, in `dataset.labels` order (labels without samples count 0).
 *
 * @since 0.1.0
 * @category utils
 */
export const labelCounts = (dataset: Dataset): ReadonlyMap<string, number> => {
  const counts = new Map(dataset.labels.map((label) => [label, 0]))
  for (const { label } of dataset.samples) if (label !== undefined) counts.set(label, (counts.get(label) ?? 0) + 1)
  return counts
}

/**
 * The class index of each sample: its label's position in `labels` (by default the dataset's own labels; pass a
 * training set's labels to index a test set the same way). Unlabelled samples and labels not in `labels` get -1.
 *
 * @since 0.1.0
 * @category utils
 */
export const labelIndices = (dataset: Dataset, labels: ReadonlyArray<string> = dataset.labels): Int32Array => {
  const index = new Map(labels.map((label, i) => [label, i]))
  return Int32Array.from(dataset.samples, (s) => (s.label === undefined ? -1 : index.get(s.label) ?? -1))
}

// ---------------------------------------------------------------------------------------------------------------
// Folders

/**
 * One thing found by `walkFolder`.
 *
 * @since 0.1.0
 * @category models
 */
export type FolderEntry =
  /** A label folder (emitted before its images, also when it holds none). */
  | { readonly _tag: "Label"; readonly label: string }
  | { readonly _tag: "Image"; readonly sample: Sample }
  | { readonly _tag: "Skipped"; readonly file: string; readonly reason: string }

const ioError = (file: string, what: string, cause: PlatformError.PlatformError): CoreError =>
  new CoreError({ reason: "Io", file, message: `Cannot ${what} ${file}: ${cause.message}`, cause })

/** The absolute path of `dir`, or an error naming it when it does not exist or is not a folder. */
const requireDirectory = (dir: string): Effect.Effect<string, CoreError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.stat(dir)).pipe(
    Effect.mapError((cause) =>
      // ENOENT, or ENOTDIR (a file where a parent folder should be)
      cause._tag === "SystemError" && (cause.reason === "NotFound" || cause.reason === "BadResource")
        ? new CoreError({ reason: "InvalidDataset", file: dir, message: `Dataset folder ${dir} does not exist`, cause })
        : ioError(dir, "read", cause)
    ),
    Effect.filterOrFail(
      (stat) => stat.type === "Directory",
      () => new CoreError({ reason: "InvalidDataset", file: dir, message: `${dir} is not a folder` })
    ),
    Effect.as(path.resolve(dir))
  )

const isDirectory = (dir: string): Effect.Effect<boolean, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.stat(dir)).pipe(
    Effect.map((stat) => stat.type === "Directory"),
    Effect.orElseSucceed(() => false)
  )

type Kind = "directory" | "file" | { readonly skip: string }

/** A folder entry: its name and what it is, symbolic links followed. */
interface Entry {
  readonly name: string
  readonly kind: Kind
}

/** What `file` is, following symbolic links. */
const kindOf = (fs: FileSystem.FileSystem, file: string): Effect.Effect<Kind> =>
  fs.stat(file).pipe(
    Effect.map((stat): Kind =>
      stat.type === "Directory" ? "directory" : stat.type === "File" ? "file" : { skip: "not a regular file" }
    ),
    // Listed but not there: a link to nothing (or a file removed since the listing).
    Effect.catchAll((error) =>
      fs.readLink(file).pipe(
        Effect.as<Kind>({ skip: "broken symbolic link" }),
        Effect.orElseSucceed((): Kind => ({ skip: `cannot be read: ${error.message}` }))
      )
    )
  )

/**
 * The entries of a folder, hidden ones left out, sorted by name. The entries are stat'ed concurrently: a folder of
 * thousands of images costs one round of the thread pool, not thousands in a row.
 */
const listDirectory = (dir: string): Effect.Effect<ReadonlyArray<Entry>, CoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const names = yield* fs.readDirectory(dir).pipe(Effect.mapError((cause) => ioError(dir, "list", cause)))
    const kept = names.filter((name) => !isIgnored(name)).sort(byName)
    return yield* Effect.forEach(kept, (name) => Effect.map(kindOf(fs, path.join(dir, name)), (kind) => ({ name, kind })), {
      concurrency: 64
    })
  })

/** Why a file is not taken as an image, or `undefined` when it is one. */
const notAnImage = (file: string): string | undefined => {
  const ext = path.extname(file).toLowerCase()
  if (imageExtensions.has(ext)) return undefined
  if (unsupported.has(ext)) return `${ext} images are not supported (Loupe reads JPEG, PNG, GIF and WebP, as its server does)`
  return ext === "" ? "not an image file (no extension)" : `not an image file (${ext})`
}

const fileEntry = (root: string, id: string, label: string | undefined): FolderEntry => {
  const file = path.join(root, id)
  const reason = notAnImage(file)
  if (reason !== undefined) return { _tag: "Skipped", file, reason }
  return { _tag: "Image", sample: label === undefined ? { id, source: file } : { id, source: file, label } }
}

/**
 * Entries under `<root>/<id>` (a folder), recursively, in name order. `visited` holds the real paths of folders
 * already walked, so a symbolic link back up the tree is skipped instead of followed forever. A subfolder that
 * cannot be listed is skipped with the reason; only the top folder failing is an error.
 */
const walkUnder = (
  root: string,
  id: string,
  label: string | undefined,
  visited: Set<string>
): Stream.Stream<FolderEntry, CoreError, FileSystem.FileSystem> => {
  const dir = path.join(root, id)
  const skipDir = (reason: string) => Stream.make<[FolderEntry]>({ _tag: "Skipped", file: dir, reason })
  const child = ({ kind, name }: Entry): Stream.Stream<FolderEntry, CoreError, FileSystem.FileSystem> => {
    const childId = id === "" ? name : `${id}/${name}`
    const file = path.join(root, childId)
    if (kind === "file") return Stream.make(fileEntry(root, childId, label))
    if (kind !== "directory") return Stream.make<[FolderEntry]>({ _tag: "Skipped", file, reason: kind.skip })
    if (label !== undefined) return walkUnder(root, childId, label, visited)
    return Stream.concat(
      Stream.make<[FolderEntry]>({ _tag: "Label", label: name }),
      walkUnder(root, childId, name, visited)
    )
  }
  const listed = Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const real = yield* fs.realPath(dir).pipe(Effect.mapError((cause) => ioError(dir, "resolve", cause)))
    if (visited.has(real)) return skipDir("already walked (a symbolic link loop)")
    visited.add(real)
    const entries = yield* listDirectory(dir)
    return Stream.flatMap(Stream.fromIterable(entries), child)
  })
  return Stream.unwrap(id === "" ? listed : Effect.catchAll(listed, (error) => Effect.succeed(skipDir(error.message))))
}

/**
 * Walk `<dir>/<label>/...` lazily, in name order. Each top-level folder is a label; images anywhere below it are
 * samples of that label (id: the path relative to `dir`, with `/`). Image files directly in `dir` are unlabelled
 * samples. Other files are `Skipped` entries; hidden files and folders are left out.
 *
 * Fails with `CoreError` `InvalidDataset` naming `dir` when it is missing or not a folder, `Io` when a folder cannot
 * be read.
 *
 * @since 0.1.0
 * @category constructors
 */
export const walkFolder = (dir: string): Stream.Stream<FolderEntry, CoreError, FileSystem.FileSystem> =>
  Stream.unwrap(Effect.map(requireDirectory(dir), (root) => walkUnder(root, "", undefined, new Set())))

/**
 * A dataset from a folder per label (see `walkFolder`). Fails naming `dir` when it is missing or not a folder.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromFolder: (dir: string) => Effect.Effect<Dataset, CoreError, FileSystem.FileSystem> = Effect.fn("Dataset.fromFolder")(
  function*(dir: string) {
    const labels: Array<string> = []
    const samples: Array<Sample> = []
    const skipped: Array<SkippedFile> = []
    yield* Stream.runForEach(walkFolder(dir), (entry) =>
      Effect.sync(() => {
        if (entry._tag === "Label") labels.push(entry.label)
        else if (entry._tag === "Image") samples.push(entry.sample)
        else skipped.push({ file: entry.file, reason: entry.reason })
      }))
    return make(samples, { labels, skipped })
  }
)

/**
 * `<dir>/train/<label>/*` and, when present, `<dir>/test/<label>/*`. When `<dir>/train` does not exist, all of
 * `dir` is the training set (`fromFolder(dir)`) and there is no test set.
 *
 * Fails as `fromFolder` does.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSplitFolders: (dir: string) => Effect.Effect<Split, CoreError, FileSystem.FileSystem> = Effect.fn(
  "Dataset.fromSplitFolders"
)(function*(dir: string) {
  const root = yield* requireDirectory(dir)
  const trainDir = path.join(root, "train")
  if (!(yield* isDirectory(trainDir))) return { train: yield* fromFolder(root), test: undefined }
  const testDir = path.join(root, "test")
  const train = yield* fromFolder(trainDir)
  const test = (yield* isDirectory(testDir)) ? yield* fromFolder(testDir) : undefined
  return { train, test }
})

// ---------------------------------------------------------------------------------------------------------------
// Manifests

interface ManifestRow {
  readonly line: number
  readonly path: string
  readonly label: string | undefined
  /** Multi-label manifests: the row's tags (possibly none). */
  readonly tags?: ReadonlyArray<string>
}

/** What a manifest's second column holds: one label per image, or several tags. */
type ManifestKind = "label" | "tags"

/** `a;b; c` as `["a", "b", "c"]`: tags separated by semicolons, blanks around them, empty and repeated ones dropped. */
const splitTags = (field: string | undefined): ReadonlyArray<string> => [
  ...new Set((field ?? "").split(";").map((tag) => tag.trim()).filter((tag) => tag !== ""))
]

const rowOf = (kind: ManifestKind, line: number, path: string, field: string | undefined): ManifestRow =>
  kind === "tags" ? { line, path, label: undefined, tags: splitTags(field) } : { line, path, label: optionalLabel(field) }

type ParsedRow = { readonly line: number; readonly row: Either.Either<ManifestRow, string> }

const optionalLabel = (label: string | undefined): string | undefined =>
  label === undefined || label === "" ? undefined : label

/**
 * CSV rows: `path,label` or `path`, with an optional header naming the columns (`path`, `label`, others); for tags,
 * `path,tag1;tag2` and the column `tags`.
 */
const parseCsv = (lines: ReadonlyArray<string>, kind: ManifestKind): ReadonlyArray<ParsedRow> => {
  let header: { readonly path: number; readonly label: number; readonly count: number } | undefined
  let first = true
  const rows: Array<ParsedRow> = []
  const ok = (line: number, path: string, field: string | undefined) => rows.push({ line, row: Either.right(rowOf(kind, line, path, field)) })
  const bad = (line: number, problem: string) => rows.push({ line, row: Either.left(problem) })
  for (const [i, text] of lines.entries()) {
    const line = i + 1
    if (text.trim() === "") continue
    const fields = Csv.parseLine(text)
    const isFirst = first
    first = false
    if (Either.isLeft(fields)) {
      bad(line, fields.left)
      continue
    }
    const values = fields.right
    const names = values.map((v) => v.toLowerCase())
    if (isFirst && names.includes("path")) {
      header = { path: names.indexOf("path"), label: names.indexOf(kind), count: names.length }
    } else if (header !== undefined) {
      if (values.length !== header.count) bad(line, `expected ${header.count} fields like the header, found ${values.length}`)
      else ok(line, values[header.path]!, header.label < 0 ? undefined : values[header.label])
    } else if (values.length > 2) {
      bad(line, `expected "path,${kind === "tags" ? "tag1;tag2" : "label"}", found ${values.length} fields`)
    } else {
      ok(line, values[0]!, values[1])
    }
  }
  return rows
}

/**
 * JSONL rows: one `{"path": "...", "label": "..."}` object per line (`label` may be absent or null); for tags,
 * `{"path": "...", "tags": ["...", ...]}` (`tags` may be absent: no tag).
 */
const parseJsonl = (lines: ReadonlyArray<string>, kind: ManifestKind): ReadonlyArray<ParsedRow> =>
  lines.flatMap((text, i): Array<ParsedRow> => {
    const line = i + 1
    if (text.trim() === "") return []
    const parsed = Either.try(() => JSON.parse(text) as unknown)
    if (Either.isLeft(parsed)) return [{ line, row: Either.left(`not valid JSON (${String(parsed.left)})`) }]
    const value = parsed.right
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return [{ line, row: Either.left(`expected an object with "path" and "${kind}"`) }]
    }
    const { label, path: file, tags } = value as { readonly path?: unknown; readonly label?: unknown; readonly tags?: unknown }
    if (typeof file !== "string") return [{ line, row: Either.left("\"path\" must be a string") }]
    if (kind === "tags") {
      if (tags !== undefined && tags !== null && !(Array.isArray(tags) && tags.every((tag) => typeof tag === "string"))) {
        return [{ line, row: Either.left("\"tags\" must be an array of strings") }]
      }
      return [{ line, row: Either.right(rowOf(kind, line, file, ((tags ?? []) as ReadonlyArray<string>).join(";"))) }]
    }
    if (label !== undefined && label !== null && typeof label !== "string") {
      return [{ line, row: Either.left("\"label\" must be a string or null") }]
    }
    return [{ line, row: Either.right({ line, path: file, label: optionalLabel(label ?? undefined) }) }]
  })

const manifestError = (file: string, line: number, problem: string): CoreError =>
  new CoreError({ reason: "InvalidManifest", file, message: `Invalid manifest ${file}, line ${line}: ${problem}` })

/** Why a listed file cannot be a sample, or `undefined` when it is a file. */
const missingReason = (file: string): Effect.Effect<string | undefined, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.stat(file)).pipe(
    Effect.map((stat) => (stat.type === "File" ? undefined : "not a file")),
    Effect.orElseSucceed(() => "file not found")
  )

/**
 * A dataset from a manifest: CSV (`.csv`: `path,label` lines, an optional header, quoted fields) or JSONL
 * (`.jsonl` / `.ndjson`: `{"path": ..., "label": ...}` per line). Relative paths are resolved against the
 * manifest's folder; sample ids are the paths as written. An empty label means unlabelled. A malformed line or a
 * path listed twice fails with `InvalidManifest` naming the file and line; listed files that do not exist are
 * `skipped`.
 *
 * With `{ tags: true }` (since 0.2.0) the manifest is multi-label and its samples carry `tags`: CSV lines
 * `path,tag1;tag2` (tags separated by semicolons; a header names the column `tags`) or JSONL
 * `{"path": ..., "tags": [...]}`. An empty tag list is an image with none of the tags.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromManifest: (
  file: string,
  options?: { readonly tags?: boolean }
) => Effect.Effect<Dataset, CoreError, FileSystem.FileSystem> = Effect.fn("Dataset.fromManifest")(
  function*(file: string, options: { readonly tags?: boolean } = {}) {
    const kind: ManifestKind = options.tags === true ? "tags" : "label"
    const ext = path.extname(file).toLowerCase()
    const parse = ext === ".csv" ? parseCsv : ext === ".jsonl" || ext === ".ndjson" ? parseJsonl : undefined
    if (parse === undefined) {
      return yield* new CoreError({
        reason: "InvalidManifest",
        file,
        message: `Unsupported manifest ${file}: expected a .csv, .jsonl or .ndjson file`
      })
    }
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(Effect.mapError((cause) => ioError(file, "read manifest", cause)))
    const base = path.dirname(path.resolve(file))
    const seen = new Map<string, number>()
    const rows: Array<ManifestRow & { readonly source: string }> = []
    for (const { line, row } of parse(text.replace(/^\uFEFF/, "").split(/\r?\n/), kind)) {
      if (Either.isLeft(row)) return yield* manifestError(file, line, row.left)
      const { label, path: listed, tags } = row.right
      if (listed === "") return yield* manifestError(file, line, "the path is empty")
      const source = path.resolve(base, listed)
      const earlier = seen.get(source)
      if (earlier !== undefined) return yield* manifestError(file, line, `${listed} is already listed on line ${earlier}`)
      seen.set(source, line)
      rows.push({ line, path: listed, label, ...(tags === undefined ? {} : { tags }), source })
    }
    const reasons = yield* Effect.forEach(rows, (row) => missingReason(row.source), { concurrency: 16 })
    const samples: Array<Sample> = []
    const skipped: Array<SkippedFile> = []
    rows.forEach((row, i) => {
      const reason = reasons[i]
      if (reason !== undefined) skipped.push({ file: row.source, reason: `${reason} (line ${row.line} of ${file})` })
      else if (row.tags !== undefined) samples.push({ id: row.path, source: row.source, tags: row.tags })
      else samples.push(row.label === undefined ? { id: row.path, source: row.source } : { id: row.path, source: row.source, label: row.label })
    })
    return make(samples, { skipped })
  }
)

// ---------------------------------------------------------------------------------------------------------------
// In-memory lists

/**
 * A dataset from `(path or bytes, label)` pairs; `undefined` means unlabelled. Sample ids are the positions
 * (`"0"`, `"1"`, ...). An empty label string fails with `InvalidDataset` naming the item.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromList = (
  items: ReadonlyArray<readonly [ImageSource, string | undefined]>
): Effect.Effect<Dataset, CoreError> =>
  Effect.forEach(items, ([source, label], i) =>
    label === ""
      ? Effect.fail(
        new CoreError({ reason: "InvalidDataset", field: `items[${i}]`, message: `Item ${i} has an empty label` })
      )
      : Effect.succeed<Sample>(label === undefined ? { id: String(i), source } : { id: String(i), source, label })).pipe(
      Effect.map((samples) => make(samples))
    )

// ---------------------------------------------------------------------------------------------------------------
// Checks

const quoteList = (names: ReadonlyArray<string>, max = 5): string =>
  names.slice(0, max).map((n) => JSON.stringify(n)).join(", ") + (names.length > max ? `, and ${names.length - max} more` : "")

const invalidDataset = (message: string): CoreError => new CoreError({ reason: "InvalidDataset", message })

/**
 * Check that a dataset can be trained on, before any image is decoded or embedded: it has images, every image has a
 * label, there are at least 2 labels, and every label has at least 2 images. Fails with `InvalidDataset` naming the
 * offending labels (or unlabelled samples).
 *
 * @since 0.1.0
 * @category validation
 */
export const validateForTraining = (dataset: Dataset): Effect.Effect<Dataset, CoreError> => {
  if (dataset.samples.length === 0) {
    const n = dataset.skipped.length
    const why = n > 0 ? ` (${n} file${n === 1 ? " was" : "s were"} skipped)` : ""
    return Effect.fail(invalidDataset(`The dataset has no images${why}`))
  }
  const unlabelled = dataset.samples.filter((s) => s.label === undefined).map((s) => s.id)
  if (unlabelled.length > 0) {
    return Effect.fail(invalidDataset(
      `${unlabelled.length} image${unlabelled.length === 1 ? " has" : "s have"} no label: ${quoteList(unlabelled)}. ` +
        "Every training image needs a label (for folders: put it in <dir>/<label>/)"
    ))
  }
  const counts = labelCounts(dataset)
  if (counts.size < 2) {
    return Effect.fail(invalidDataset(
      `The dataset has a single label, ${JSON.stringify(dataset.labels[0])}; training needs at least 2 labels`
    ))
  }
  const small = [...counts].filter(([, n]) => n < 2)
  if (small.length > 0) {
    const listed = small.map(([label, n]) => `${JSON.stringify(label)} (${n} image${n === 1 ? "" : "s"})`).join(", ")
    return Effect.fail(invalidDataset(
      `${small.length === 1 ? "Label" : "Labels"} ${listed} ${small.length === 1 ? "has" : "have"} fewer than 2 ` +
        "images; every label needs at least 2"
    ))
  }
  return Effect.succeed(dataset)
}

/**
 * Check that a multi-label dataset can be trained on (one yes/no head per tag), before any image is decoded: it has
 * images, every image carries `tags` (none is a label-only or unlabelled sample), there is at least one tag, and
 * every tag has at least 2 images with it and 1 without. Fails with `InvalidDataset` naming the offending samples or
 * tags.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateForTags = (dataset: Dataset): Effect.Effect<Dataset, CoreError> => {
  if (dataset.samples.length === 0) return Effect.fail(invalidDataset("The dataset has no images"))
  const untagged = dataset.samples.filter((s) => s.tags === undefined).map((s) => s.id)
  if (untagged.length > 0) {
    return Effect.fail(invalidDataset(
      `${untagged.length} image${untagged.length === 1 ? " has" : "s have"} no tags list: ${quoteList(untagged)}. ` +
        "Every image of a tags dataset lists its tags (an empty list for none)"
    ))
  }
  if (dataset.labels.length === 0) return Effect.fail(invalidDataset("No image has a tag; training needs at least 1 tag"))
  const counts = new Map(dataset.labels.map((tag) => [tag, 0]))
  for (const sample of dataset.samples) for (const tag of sample.tags!) counts.set(tag, (counts.get(tag) ?? 0) + 1)
  const rare = [...counts].filter(([, n]) => n < 2)
  if (rare.length > 0) {
    const listed = rare.map(([tag, n]) => `${JSON.stringify(tag)} (${n} image${n === 1 ? "" : "s"})`).join(", ")
    return Effect.fail(invalidDataset(`${rare.length === 1 ? "Tag" : "Tags"} ${listed}: every tag needs at least 2 images`))
  }
  const everywhere = [...counts].filter(([, n]) => n === dataset.samples.length).map(([tag]) => tag)
  if (everywhere.length > 0) {
    return Effect.fail(invalidDataset(
      `${everywhere.length === 1 ? "Tag" : "Tags"} ${quoteList(everywhere)} ${everywhere.length === 1 ? "is" : "are"} on every image; ` +
        "every tag needs at least 1 image without it"
    ))
  }
  return Effect.succeed(dataset)
}
