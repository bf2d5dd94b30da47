import { expect, layer } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Chunk, Effect, Stream } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Dataset } from "@loupe/core"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"

const tempDir = (prefix: string) => Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), `loupe-${prefix}-`)))

/** Write files (relative path -> contents) under `root`, creating folders; a path ending in "/" makes a folder. */
const writeTree = (root: string, files: Record<string, string>) =>
  Effect.promise(async () => {
    for (const [rel, contents] of Object.entries(files)) {
      const file = path.join(root, rel)
      if (rel.endsWith("/")) {
        await fs.mkdir(file, { recursive: true })
      } else {
        await fs.mkdir(path.dirname(file), { recursive: true })
        await fs.writeFile(file, contents)
      }
    }
  })

const byLabel = (dataset: Dataset.Dataset) => Object.fromEntries(Dataset.labelCounts(dataset))

const sortedBytewise = (xs: ReadonlyArray<string>) => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))

layer(NodeFileSystem.layer)("Dataset.fromFolder", (it) => {
  it.effect("cats-vs-dogs/train: two labels from the folder names, 100 images each", () =>
    Effect.gen(function*() {
      const dir = path.join(catsVsDogs, "train")
      const dataset = yield* Dataset.fromFolder(dir)
      expect(dataset.labels).toEqual(["cats", "dogs"])
      expect(byLabel(dataset)).toEqual({ cats: 100, dogs: 100 })
      expect(dataset.skipped).toEqual([])
      const first = dataset.samples[0]!
      expect(first).toEqual({ id: "cats/cat.1.jpg", source: path.join(dir, "cats", "cat.1.jpg"), label: "cats" })
      const ids = dataset.samples.map((s) => s.id)
      expect(ids).toEqual(sortedBytewise(ids))
      expect(new Set(ids).size).toBe(200)
      for (const s of dataset.samples) expect(s.id.startsWith(`${s.label}/`)).toBe(true)
      // Deterministic: a second load gives the same samples in the same order.
      expect((yield* Dataset.fromFolder(dir)).samples).toEqual(dataset.samples)
    }))

  it.effect("non-images are skipped with a reason, hidden files ignored, subfolders belong to their label", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("folder")
      yield* writeTree(root, {
        "apples/a1.png": "png",
        "apples/A2.JPG": "jpg",
        "apples/notes.txt": "some notes",
        "apples/.DS_Store": "mac",
        "pears/p1.webp": "webp",
        "pears/more/p2.jpeg": "jpeg",
        "pears/labels.csv": "a,b",
        "pears/scan.bmp": "bmp",
        "pears/Makefile": "all:",
        "plums/": "",
        ".git/HEAD": "ref",
        "README.md": "# fruit",
        "loose.png": "png"
      })
      const dataset = yield* Dataset.fromFolder(root)
      expect(dataset.labels).toEqual(["apples", "pears", "plums"])
      expect(dataset.samples).toEqual([
        { id: "apples/A2.JPG", source: path.join(root, "apples/A2.JPG"), label: "apples" },
        { id: "apples/a1.png", source: path.join(root, "apples/a1.png"), label: "apples" },
        { id: "loose.png", source: path.join(root, "loose.png") },
        { id: "pears/more/p2.jpeg", source: path.join(root, "pears/more/p2.jpeg"), label: "pears" },
        { id: "pears/p1.webp", source: path.join(root, "pears/p1.webp"), label: "pears" }
      ])
      expect(dataset.skipped).toEqual([
        { file: path.join(root, "README.md"), reason: "not an image file (.md)" },
        { file: path.join(root, "apples/notes.txt"), reason: "not an image file (.txt)" },
        { file: path.join(root, "pears/Makefile"), reason: "not an image file (no extension)" },
        { file: path.join(root, "pears/labels.csv"), reason: "not an image file (.csv)" },
        { file: path.join(root, "pears/scan.bmp"), reason: ".bmp images are not supported (Loupe reads JPEG, PNG, GIF and WebP, as its server does)" }
      ])
      expect(byLabel(dataset)).toEqual({ apples: 2, pears: 2, plums: 0 })
    }))

  it.effect("symbolic links: a linked label folder is followed, a loop and a broken link are skipped", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("links")
      const elsewhere = yield* tempDir("elsewhere")
      yield* writeTree(root, { "apples/a.png": "" })
      yield* writeTree(elsewhere, { "f.png": "" })
      yield* Effect.promise(async () => {
        await fs.symlink(elsewhere, path.join(root, "figs"))
        await fs.symlink(root, path.join(root, "apples", "loop"))
        await fs.symlink(path.join(root, "nowhere.png"), path.join(root, "apples", "gone.png"))
      })
      const dataset = yield* Dataset.fromFolder(root)
      expect(dataset.samples.map((s) => [s.id, s.label])).toEqual([["apples/a.png", "apples"], ["figs/f.png", "figs"]])
      expect(dataset.skipped).toEqual([
        { file: path.join(root, "apples/gone.png"), reason: "broken symbolic link" },
        { file: path.join(root, "apples/loop"), reason: "already walked (a symbolic link loop)" }
      ])
    }))

  it.effect("walkFolder is a lazy stream: the first entries arrive without listing every label", () =>
    Effect.gen(function*() {
      const first = yield* Stream.runCollect(Stream.take(Dataset.walkFolder(path.join(catsVsDogs, "train")), 3))
      expect(Chunk.toReadonlyArray(first).map((e) => (e._tag === "Image" ? e.sample.id : e._tag))).toEqual([
        "Label",
        "cats/cat.1.jpg",
        "cats/cat.10.jpg"
      ])
    }))

  it.effect("a missing folder, or a file, is an error naming the path", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("missing")
      const missing = path.join(root, "nope")
      const error = yield* Effect.flip(Dataset.fromFolder(missing))
      expect(error.reason).toBe("InvalidDataset")
      expect(error.file).toBe(missing)
      expect(error.message).toBe(`Dataset folder ${missing} does not exist`)
      const file = path.join(catsVsDogs, "README.md")
      const notDir = yield* Effect.flip(Dataset.fromFolder(file))
      expect(notDir.reason).toBe("InvalidDataset")
      expect(notDir.message).toBe(`${file} is not a folder`)
      expect((yield* Effect.flip(Dataset.fromSplitFolders(missing))).file).toBe(missing)
    }))
})

layer(NodeFileSystem.layer)("Dataset.fromSplitFolders", (it) => {
  it.effect("cats-vs-dogs: train 100 + 100, test 20 + 20", () =>
    Effect.gen(function*() {
      const { test, train } = yield* Dataset.fromSplitFolders(catsVsDogs)
      expect(byLabel(train)).toEqual({ cats: 100, dogs: 100 })
      expect(test).toBeDefined()
      expect(byLabel(test!)).toEqual({ cats: 20, dogs: 20 })
      expect(test!.samples[0]!.source).toBe(path.join(catsVsDogs, "test", "cats", "cat.4001.jpg"))
      // The README beside train/ and test/ belongs to neither.
      expect([...train.skipped, ...test!.skipped]).toEqual([])
    }))

  it.effect("without train/ the whole folder is the training set; without test/ there is no test set", () =>
    Effect.gen(function*() {
      const flat = yield* Dataset.fromSplitFolders(path.join(catsVsDogs, "train"))
      expect(flat.test).toBeUndefined()
      expect(byLabel(flat.train)).toEqual({ cats: 100, dogs: 100 })

      const root = yield* tempDir("split")
      yield* writeTree(root, { "train/a/1.png": "", "train/a/2.png": "", "train/b/1.png": "" })
      const onlyTrain = yield* Dataset.fromSplitFolders(root)
      expect(onlyTrain.test).toBeUndefined()
      expect(onlyTrain.train.samples.map((s) => s.id)).toEqual(["a/1.png", "a/2.png", "b/1.png"])
    }))
})

layer(NodeFileSystem.layer)("Dataset.fromManifest", (it) => {
  const cat = (n: number) => path.join(catsVsDogs, "train", "cats", `cat.${n}.jpg`)
  const dog = (n: number) => path.join(catsVsDogs, "train", "dogs", `dog.${n}.jpg`)

  it.effect("CSV with a header, quoted fields, relative and absolute paths, CRLF, blank lines", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("csv")
      yield* writeTree(root, { "imgs/a, b.png": "", "imgs/c.png": "" })
      const manifest = path.join(root, "labels.csv")
      const csv = [
        "\uFEFFpath,label",
        `${cat(1)},cat`,
        `"${dog(2)}", "dog"`,
        "",
        "\"imgs/a, b.png\",cat",
        "imgs/c.png,",
        "imgs/missing.png,dog",
        `"${cat(3)}","cat ""tabby"""`
      ].join("\r\n")
      yield* Effect.promise(() => fs.writeFile(manifest, csv))
      const dataset = yield* Dataset.fromManifest(manifest)
      expect(dataset.samples).toEqual([
        { id: cat(1), source: cat(1), label: "cat" },
        { id: dog(2), source: dog(2), label: "dog" },
        { id: "imgs/a, b.png", source: path.join(root, "imgs/a, b.png"), label: "cat" },
        { id: "imgs/c.png", source: path.join(root, "imgs/c.png") },
        { id: cat(3), source: cat(3), label: "cat \"tabby\"" }
      ])
      expect(dataset.labels).toEqual(["cat", "cat \"tabby\"", "dog"])
      expect(dataset.skipped).toEqual([
        { file: path.join(root, "imgs/missing.png"), reason: `file not found (line 7 of ${manifest})` }
      ])
    }))

  it.effect("CSV without a header: path,label per line; a header may name columns in any order", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("csv-plain")
      const plain = path.join(root, "plain.csv")
      yield* Effect.promise(() => fs.writeFile(plain, `${cat(1)},cat\n${dog(1)},dog\n`))
      expect((yield* Dataset.fromManifest(plain)).samples.map((s) => s.label)).toEqual(["cat", "dog"])
      const reordered = path.join(root, "reordered.csv")
      yield* Effect.promise(() => fs.writeFile(reordered, `label,split,Path\ncat,train,${cat(1)}\ndog,test,${dog(1)}\n`))
      const dataset = yield* Dataset.fromManifest(reordered)
      expect(dataset.samples).toEqual([
        { id: cat(1), source: cat(1), label: "cat" },
        { id: dog(1), source: dog(1), label: "dog" }
      ])
    }))

  it.effect("JSONL: one object per line, label optional or null", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("jsonl")
      yield* writeTree(root, { "x.png": "" })
      const manifest = path.join(root, "data.jsonl")
      const lines = [
        JSON.stringify({ path: cat(5), label: "cat" }),
        JSON.stringify({ path: "x.png", label: null, note: "extra keys are fine" }),
        "",
        JSON.stringify({ path: dog(5), label: "dog" })
      ]
      yield* Effect.promise(() => fs.writeFile(manifest, lines.join("\n")))
      const dataset = yield* Dataset.fromManifest(manifest)
      expect(dataset.samples).toEqual([
        { id: cat(5), source: cat(5), label: "cat" },
        { id: "x.png", source: path.join(root, "x.png") },
        { id: dog(5), source: dog(5), label: "dog" }
      ])
      expect(dataset.labels).toEqual(["cat", "dog"])
    }))

  const malformed: ReadonlyArray<readonly [string, string, string, RegExp]> = [
    ["too many fields", "m.csv", `${cat(1)},cat\n${cat(2)},cat,extra\n`, /line 2: expected "path,label", found 3 fields/],
    ["an unterminated quote", "m.csv", `path,label\n"${cat(1)},cat\n`, /line 2: unterminated quoted field/],
    ["a header/field count mismatch", "m.csv", `path,label\n${cat(1)}\n`, /line 2: expected 2 fields like the header/],
    ["an empty path", "m.csv", `${cat(1)},cat\n\n ,dog\n`, /line 3: the path is empty/],
    ["a path listed twice", "m.csv", `${cat(1)},cat\n${cat(1)},dog\n`, /line 2: .* is already listed on line 1/],
    ["broken JSON", "m.jsonl", `{"path":"${cat(1)}","label":"cat"}\n{"path": oops}\n`, /line 2: not valid JSON/],
    ["a non-string label", "m.jsonl", `{"path":"${cat(1)}","label":3}\n`, /line 1: "label" must be a string or null/],
    ["a JSON array", "m.jsonl", `["${cat(1)}","cat"]\n`, /line 1: expected an object/]
  ]

  for (const [what, name, contents, pattern] of malformed) {
    it.effect(`${what} fails with InvalidManifest naming the file and line`, () =>
      Effect.gen(function*() {
        const manifest = path.join(yield* tempDir("bad"), name)
        yield* Effect.promise(() => fs.writeFile(manifest, contents))
        const error = yield* Effect.flip(Dataset.fromManifest(manifest))
        expect(error.reason).toBe("InvalidManifest")
        expect(error.file).toBe(manifest)
        expect(error.message).toContain(manifest)
        expect(error.message).toMatch(pattern)
      }))
  }

  it.effect("an unknown extension or a missing manifest is an error naming it", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("ext")
      const yaml = path.join(root, "labels.yaml")
      yield* Effect.promise(() => fs.writeFile(yaml, "a: b"))
      const unsupported = yield* Effect.flip(Dataset.fromManifest(yaml))
      expect([unsupported.reason, unsupported.file]).toEqual(["InvalidManifest", yaml])
      const missing = path.join(root, "none.csv")
      const notFound = yield* Effect.flip(Dataset.fromManifest(missing))
      expect([notFound.reason, notFound.file]).toEqual(["Io", missing])
    }))
})

layer(NodeFileSystem.layer)("Dataset.fromManifest with tags (multi-label)", (it) => {
  const cat = (n: number) => path.join(catsVsDogs, "train", "cats", `cat.${n}.jpg`)
  const dog = (n: number) => path.join(catsVsDogs, "train", "dogs", `dog.${n}.jpg`)

  it.effect("CSV path,tag1;tag2 (blanks and repeats dropped, an empty field for none) and JSONL {path, tags}", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("tags")
      const csv = path.join(root, "tags.csv")
      yield* Effect.promise(() => fs.writeFile(csv, `path,tags\n${cat(1)},animal; cat;cat\n${dog(1)},"animal;dog"\n${cat(2)},\n`))
      const fromCsv = yield* Dataset.fromManifest(csv, { tags: true })
      expect(fromCsv.samples).toEqual([
        { id: cat(1), source: cat(1), tags: ["animal", "cat"] },
        { id: dog(1), source: dog(1), tags: ["animal", "dog"] },
        { id: cat(2), source: cat(2), tags: [] }
      ])
      // The tags are the dataset's labels.
      expect(fromCsv.labels).toEqual(["animal", "cat", "dog"])
      const jsonl = path.join(root, "tags.jsonl")
      yield* Effect.promise(() => fs.writeFile(jsonl, `{"path": "${cat(1)}", "tags": ["animal", "cat"]}\n{"path": "${dog(1)}"}\n`))
      expect((yield* Dataset.fromManifest(jsonl, { tags: true })).samples.map((s) => s.tags)).toEqual([["animal", "cat"], []])
      const bad = path.join(root, "bad.jsonl")
      yield* Effect.promise(() => fs.writeFile(bad, `{"path": "${cat(1)}", "tags": "animal"}\n`))
      const error = yield* Effect.flip(Dataset.fromManifest(bad, { tags: true }))
      expect(error.message).toBe(`Invalid manifest ${bad}, line 1: "tags" must be an array of strings`)
    }))

  it.effect("validateForTags: every image lists its tags, and each tag is on at least 2 images and missing from 1", () =>
    Effect.gen(function*() {
      const sample = (id: string, tags?: ReadonlyArray<string>) => (tags === undefined ? { id, source: id } : { id, source: id, tags })
      const ok = Dataset.make([sample("a", ["x"]), sample("b", ["x", "y"]), sample("c", ["y"]), sample("d", [])])
      expect(yield* Dataset.validateForTags(ok)).toBe(ok)
      const untagged = yield* Effect.flip(Dataset.validateForTags(Dataset.make([sample("a", ["x"]), sample("b")])))
      expect(untagged.message).toContain("1 image has no tags list: \"b\"")
      const rare = yield* Effect.flip(Dataset.validateForTags(Dataset.make([sample("a", ["x", "z"]), sample("b", ["x"]), sample("c", [])])))
      expect(rare.message).toBe("Tag \"z\" (1 image): every tag needs at least 2 images")
      const everywhere = yield* Effect.flip(Dataset.validateForTags(Dataset.make([sample("a", ["x"]), sample("b", ["x"])])))
      expect(everywhere.message).toContain("Tag \"x\" is on every image")
    }))
})

layer(NodeFileSystem.layer)("Dataset.fromList and streams", (it) => {
  it.effect("paths and bytes, labelled or not; ids are positions; labels sorted", () =>
    Effect.gen(function*() {
      const bytes = new Uint8Array([1, 2, 3])
      const dataset = yield* Dataset.fromList([["/tmp/z.png", "zebra"], [bytes, "ant"], ["/tmp/u.png", undefined]])
      expect(dataset.labels).toEqual(["ant", "zebra"])
      expect(dataset.samples).toEqual([
        { id: "0", source: "/tmp/z.png", label: "zebra" },
        { id: "1", source: bytes, label: "ant" },
        { id: "2", source: "/tmp/u.png" }
      ])
      expect(Chunk.toReadonlyArray(yield* Stream.runCollect(Dataset.stream(dataset)))).toEqual(dataset.samples)
      expect([...Dataset.labelIndices(dataset)]).toEqual([1, 0, -1])
      // A test set indexed by the training set's labels; an unknown label is -1.
      expect([...Dataset.labelIndices(dataset, ["zebra", "yak"])]).toEqual([0, -1, -1])
    }))

  it.effect("an empty label string is an error naming the item", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Dataset.fromList([["/tmp/a.png", "a"], ["/tmp/b.png", ""]]))
      expect(error.reason).toBe("InvalidDataset")
      expect(error.field).toBe("items[1]")
    }))
})

layer(NodeFileSystem.layer)("Dataset.validateForTraining", (it) => {
  const list = (...items: ReadonlyArray<readonly [string, string | undefined]>) => Dataset.fromList(items)

  it.effect("accepts cats-vs-dogs", () =>
    Effect.gen(function*() {
      const { train } = yield* Dataset.fromSplitFolders(catsVsDogs)
      expect(yield* Dataset.validateForTraining(train)).toBe(train)
    }))

  it.effect("a label with one image fails, naming the label", () =>
    Effect.gen(function*() {
      const dataset = yield* list(["a1.png", "cat"], ["a2.png", "cat"], ["b1.png", "lonely-dog"])
      const error = yield* Effect.flip(Dataset.validateForTraining(dataset))
      expect(error.reason).toBe("InvalidDataset")
      expect(error.message).toBe("Label \"lonely-dog\" (1 image) has fewer than 2 images; every label needs at least 2")
    }))

  it.effect("a single label fails, naming it", () =>
    Effect.gen(function*() {
      const dataset = yield* list(["a1.png", "cat"], ["a2.png", "cat"], ["a3.png", "cat"])
      const error = yield* Effect.flip(Dataset.validateForTraining(dataset))
      expect(error.reason).toBe("InvalidDataset")
      expect(error.message).toContain("single label, \"cat\"")
    }))

  it.effect("unlabelled images fail, naming them", () =>
    Effect.gen(function*() {
      const dataset = yield* list(["a1.png", "cat"], ["a2.png", "cat"], ["b1.png", "dog"], ["b2.png", "dog"], ["u.png", undefined])
      const error = yield* Effect.flip(Dataset.validateForTraining(dataset))
      expect(error.reason).toBe("InvalidDataset")
      expect(error.message).toMatch(/^1 image has no label: "4"/)
    }))

  it.effect("a folder: an empty label folder and a one-image label are both named; loose images are unlabelled", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("validate")
      yield* writeTree(root, { "a/1.png": "", "a/2.png": "", "b/1.png": "", "c/notes.txt": "" })
      const error = yield* Effect.flip(Dataset.fromFolder(root).pipe(Effect.flatMap(Dataset.validateForTraining)))
      expect(error.message).toBe(
        "Labels \"b\" (1 image), \"c\" (0 images) have fewer than 2 images; every label needs at least 2"
      )
      yield* writeTree(root, { "b/2.png": "", "c/1.png": "", "c/2.png": "", "stray.jpg": "" })
      const unlabelled = yield* Effect.flip(Dataset.fromFolder(root).pipe(Effect.flatMap(Dataset.validateForTraining)))
      expect(unlabelled.message).toContain("\"stray.jpg\"")
    }))

  it.effect("an empty dataset fails, saying how many files were skipped", () =>
    Effect.gen(function*() {
      const root = yield* tempDir("empty")
      yield* writeTree(root, { "a/readme.txt": "" })
      const error = yield* Effect.flip(Dataset.fromFolder(root).pipe(Effect.flatMap(Dataset.validateForTraining)))
      expect(error.message).toBe("The dataset has no images (1 file was skipped)")
    }))
})
