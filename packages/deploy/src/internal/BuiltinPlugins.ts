/**
 * The plugins the standalone server entry (the Docker image) registers: every built-in backbone and head. A bundle
 * whose backbone or head is not among them cannot be served by the entry.
 *
 * @internal
 */
import type { Registry } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { Heads, ManualTraining, MultiBackbone } from "@loupe/trainers"

export const builtins: Registry.Plugins = { backbones: Catalog.builtins, heads: [...Heads.heads, ...ManualTraining.heads, ...MultiBackbone.heads] }
