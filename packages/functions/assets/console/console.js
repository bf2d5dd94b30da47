// The Loupe console's one script (served as a static file; the Content-Security-Policy forbids inline scripts).
// Data page: drag-and-drop and folder upload with per-file progress, multi-select with shift-click, keyboard
// shortcuts (1-9 label, x delete, arrows move, space select, Esc clear) and the bulk bar. Everything else is htmx.
"use strict"
;(() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? ""

  /** Say something in the page's message area (text only, never HTML). */
  const say = (message, isError) => {
    const area = document.querySelector("[data-message]")
    if (area === null) return
    area.textContent = message
    area.classList.toggle("error", Boolean(isError))
  }

  // ------------------------------------------------------------------------------------------------------------
  // Upload: each file is its own request (raw body), so one bad image fails alone and the others go on.

  const UPLOADS_AT_ONCE = 4

  const uploadOne = (url, file, row) =>
    new Promise((resolve) => {
      const xhr = new XMLHttpRequest()
      const bar = row.querySelector("progress")
      xhr.open("POST", url)
      xhr.setRequestHeader("X-CSRF-Token", csrf())
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream")
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) bar.value = e.loaded / e.total
      })
      const fail = (message) => {
        row.classList.add("failed")
        row.querySelector(".name").textContent = `${file.webkitRelativePath || file.name}: ${message}`
        bar.remove()
        resolve(false)
      }
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 1
          row.classList.add("done")
          resolve(true)
        } else {
          fail(xhr.responseText || `HTTP ${xhr.status}`)
        }
      })
      xhr.addEventListener("error", () => fail("the connection failed"))
      xhr.send(file)
    })

  /** The label a file is uploaded with: the form's label, or its folder's name when asked, or none. */
  const labelFor = (zone, file) => {
    const fromFolder = zone.querySelector("[data-upload-folder-labels]")?.checked
    if (fromFolder && file.webkitRelativePath) {
      const parts = file.webkitRelativePath.split("/")
      if (parts.length >= 2) return parts[parts.length - 2]
    }
    return zone.querySelector("[data-upload-label]")?.value.trim() ?? ""
  }

  const upload = async (zone, files) => {
    const images = [...files].filter((f) => f.type === "" || f.type.startsWith("image/"))
    const skipped = files.length - images.length
    if (images.length === 0) {
      say(skipped > 0 ? `No images among the ${skipped} files` : "No files", true)
      return
    }
    const list = zone.querySelector("[data-upload-list]")
    list.replaceChildren()
    const jobs = images.map((file) => {
      const row = document.createElement("li")
      const name = document.createElement("span")
      name.className = "name"
      name.textContent = file.webkitRelativePath || file.name
      const bar = document.createElement("progress")
      bar.max = 1
      bar.value = 0
      row.append(name, bar)
      list.append(row)
      const label = labelFor(zone, file)
      const url = zone.dataset.upload + (label === "" ? "" : `?label=${encodeURIComponent(label)}`)
      return () => uploadOne(url, file, row)
    })
    say(`Uploading ${jobs.length} images…`)
    let next = 0
    let ok = 0
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++]
        if (await job()) ok++
      }
    }
    await Promise.all(Array.from({ length: Math.min(UPLOADS_AT_ONCE, jobs.length) }, worker))
    const failed = jobs.length - ok
    say(`Uploaded ${ok} of ${jobs.length} images${failed > 0 ? `; ${failed} failed (see the list)` : ""}${skipped > 0 ? `; ${skipped} non-image files skipped` : ""}`, failed > 0)
    refreshSamples()
  }

  /** Reload the grid (and its counts) in place. */
  const refreshSamples = () => {
    const area = document.getElementById("samples")
    if (area === null || typeof htmx === "undefined") return
    htmx.ajax("GET", area.dataset.src || location.pathname + location.search, { target: "#samples", select: "#samples", swap: "outerHTML" })
  }

  /** Reload the filter counts alone, so that focus and selection in the grid stay where they are. */
  const refreshCounts = () => {
    const area = document.getElementById("samples")
    if (area === null || area.querySelector(".filters") === null || typeof htmx === "undefined") return
    htmx.ajax("GET", area.dataset.src, { target: "#samples .filters", select: ".filters", swap: "outerHTML" })
  }

  const setUpUpload = (zone) => {
    if (zone.dataset.ready) return
    zone.dataset.ready = "1"
    for (const input of zone.querySelectorAll('input[type="file"]')) {
      input.addEventListener("change", () => {
        upload(zone, input.files)
        input.value = ""
      })
    }
    zone.addEventListener("dragover", (e) => {
      e.preventDefault()
      zone.classList.add("over")
    })
    zone.addEventListener("dragleave", () => zone.classList.remove("over"))
    zone.addEventListener("drop", async (e) => {
      e.preventDefault()
      zone.classList.remove("over")
      upload(zone, await droppedFiles(e.dataTransfer))
    })
  }

  /** The files dropped, folders walked (their files keep their relative path, like a folder picker's). */
  const droppedFiles = async (transfer) => {
    const entries = [...transfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean)
    if (entries.length === 0) return [...transfer.files]
    const files = []
    const walk = async (entry, prefix) => {
      if (entry.isFile) {
        const file = await new Promise((resolve, reject) => entry.file(resolve, reject))
        if (prefix !== "") Object.defineProperty(file, "webkitRelativePath", { value: prefix + file.name })
        files.push(file)
      } else if (entry.isDirectory) {
        const reader = entry.createReader()
        for (;;) {
          const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject))
          if (batch.length === 0) break
          for (const child of batch) await walk(child, `${prefix}${entry.name}/`)
        }
      }
    }
    for (const entry of entries) await walk(entry, "")
    return files
  }

  // ------------------------------------------------------------------------------------------------------------
  // Selection, keyboard and bulk actions on the grid.

  let anchor = null

  const tiles = () => [...document.querySelectorAll("[data-grid] [data-sample]")]
  const selected = () => tiles().filter((t) => t.getAttribute("aria-selected") === "true")
  const select = (tile, on) => tile.setAttribute("aria-selected", on ? "true" : "false")

  const updateBulk = () => {
    const count = selected().length
    const counter = document.querySelector("[data-selected-count]")
    if (counter !== null) counter.textContent = String(count)
    for (const b of document.querySelectorAll("[data-bulk]")) b.disabled = count === 0
  }

  const onTileClick = (e) => {
    const tile = e.target.closest("[data-sample]")
    if (tile === null) return
    e.preventDefault()
    const all = tiles()
    if (e.shiftKey && anchor !== null && all.includes(anchor)) {
      const [a, b] = [all.indexOf(anchor), all.indexOf(tile)].sort((x, y) => x - y)
      if (!(e.ctrlKey || e.metaKey)) for (const t of all) select(t, false)
      for (const t of all.slice(a, b + 1)) select(t, true)
    } else if (e.ctrlKey || e.metaKey) {
      select(tile, tile.getAttribute("aria-selected") !== "true")
      anchor = tile
    } else {
      const only = tile.getAttribute("aria-selected") === "true" && selected().length === 1
      for (const t of all) select(t, false)
      select(tile, !only)
      anchor = tile
    }
    tile.focus()
    updateBulk()
  }

  /** The tiles an action applies to: the selected ones, else the focused one. */
  const targets = () => {
    const chosen = selected()
    if (chosen.length > 0) return chosen
    const focused = document.activeElement?.closest?.("[data-sample]")
    return focused ? [focused] : []
  }

  const labels = () => {
    const grid = document.querySelector("[data-grid]")
    try {
      return JSON.parse(grid?.dataset.labels ?? "[]")
    } catch {
      return []
    }
  }

  const bulk = async (op, label, chosen) => {
    const grid = document.querySelector("[data-grid]")
    if (grid === null || chosen.length === 0) return
    const body = new URLSearchParams({ op, ids: chosen.map((t) => t.dataset.sample).join(",") })
    if (label !== undefined) body.set("label", label)
    const response = await fetch(grid.dataset.bulk, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
      body
    })
    const text = await response.text()
    if (!response.ok) {
      say(text || `HTTP ${response.status}`, true)
      return
    }
    say(text)
    if (op === "delete") {
      const all = tiles()
      const after = all.slice(all.indexOf(chosen[chosen.length - 1]) + 1).find((t) => !chosen.includes(t))
      for (const t of chosen) t.remove()
      after?.focus()
    } else {
      for (const t of chosen) {
        const caption = t.querySelector(".caption")
        caption.textContent = op === "label" ? label : "unlabelled"
        caption.classList.toggle("unlabelled", op !== "label")
        t.dataset.label = op === "label" ? label : ""
        select(t, false)
      }
    }
    updateBulk()
    refreshCounts()
  }

  const labelTargets = (label) => {
    const chosen = targets()
    if (chosen.length === 0) return
    const focused = document.activeElement?.closest?.("[data-sample]")
    bulk("label", label, chosen).then(() => {
      // Labelling one focused image moves on to the next, so a run of images is labelled key by key.
      if (chosen.length === 1 && focused === chosen[0]) move(focused, 1)
    })
  }

  const deleteTargets = () => {
    const chosen = targets()
    if (chosen.length === 0) return
    if (!confirm(`Delete ${chosen.length} image${chosen.length === 1 ? "" : "s"}? This cannot be undone.`)) return
    bulk("delete", undefined, chosen)
  }

  /** Move focus by `step` tiles (or rows: the grid's column count). */
  const move = (from, step) => {
    const all = tiles()
    const i = all.indexOf(from)
    const to = all[Math.max(0, Math.min(all.length - 1, i + step))]
    to?.focus()
  }

  const columns = () => {
    const all = tiles()
    if (all.length === 0) return 1
    const top = all[0].offsetTop
    const n = all.findIndex((t) => t.offsetTop !== top)
    return n === -1 ? all.length : n
  }

  const onKey = (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return
    if (e.target.closest("input, select, textarea, [contenteditable]")) return
    const tile = document.activeElement?.closest?.("[data-sample]")
    if (/^[1-9]$/.test(e.key)) {
      const label = labels()[Number(e.key) - 1]
      if (label !== undefined) {
        e.preventDefault()
        labelTargets(label)
      }
    } else if (e.key === "x" || e.key === "Delete") {
      e.preventDefault()
      deleteTargets()
    } else if (e.key === "Escape") {
      for (const t of tiles()) select(t, false)
      updateBulk()
    } else if (tile !== null && e.key === " ") {
      e.preventDefault()
      select(tile, tile.getAttribute("aria-selected") !== "true")
      anchor = tile
      updateBulk()
    } else if (tile !== null && e.key.startsWith("Arrow")) {
      e.preventDefault()
      const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns() }[e.key]
      move(tile, step)
    } else if (tile === null && e.key.startsWith("Arrow") && tiles().length > 0 && document.activeElement === document.body) {
      e.preventDefault()
      tiles()[0].focus()
    } else if (tile !== null && e.key === "Enter") {
      e.preventDefault()
      window.open(tile.dataset.image, "_blank", "noopener")
    }
  }

  const onBulkButton = (e) => {
    const button = e.target.closest("[data-bulk]")
    if (button === null) return
    e.preventDefault()
    const op = button.dataset.bulk
    if (op === "delete") deleteTargets()
    else if (op === "unlabel") bulk("unlabel", undefined, targets())
    else {
      const label = document.querySelector("[data-bulk-label]")?.value.trim() ?? ""
      if (label === "") say("Choose or type a label first", true)
      else bulk("label", label, targets())
    }
  }

  const setUp = () => {
    for (const zone of document.querySelectorAll("[data-upload]")) setUpUpload(zone)
    updateBulk()
  }

  document.addEventListener("click", (e) => {
    if (e.target.closest("[data-grid] [data-sample]")) onTileClick(e)
    else onBulkButton(e)
  })
  document.addEventListener("keydown", onKey)
  document.addEventListener("DOMContentLoaded", setUp)
  document.addEventListener("htmx:afterSettle", setUp)
})()
