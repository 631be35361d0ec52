// src/integrity/metadata-catalog.ts
// Which metadata this process has stored, where the cache itself cannot say: the variant keys of
// documents whose answers vary (their keys hold request header values a file's request does not
// carry), and the apt indexes of each route (a pool file's path does not name its suite). Bounded,
// in memory only: after a restart it fills again as clients fetch metadata.

/** Metadata keys remembered, at most; the least recently stored is forgotten first. */
const MAX_KEYS = 1024
/** Stored variants remembered per key. */
const MAX_VARIANTS = 4

interface Noted {
  readonly prefix: string
  readonly isIndex: boolean
  /** Store keys of this key's stored answers, most recent first (a variant's key, or the key itself). */
  readonly storeKeys: string[]
}

export class MetadataCatalog {
  /** By URL (or representation) key, in order of storing: a Map keeps insertion order. */
  readonly #keys = new Map<string, Noted>()

  /** `storeKey` holds the metadata at `key` on the route `prefix`; `isIndex` for an apt index. */
  note(prefix: string, key: string, storeKey: string, isIndex: boolean): void {
    const previous = this.#keys.get(key)
    this.#keys.delete(key)
    const storeKeys = [storeKey, ...(previous?.storeKeys.filter((k) => k !== storeKey) ?? [])].slice(0, MAX_VARIANTS)
    this.#keys.set(key, { prefix, isIndex, storeKeys })
    if (this.#keys.size > MAX_KEYS) this.#keys.delete(this.#keys.keys().next().value as string)
  }

  /** The store keys noted for `key`, most recent first. */
  storeKeys(key: string): readonly string[] {
    return this.#keys.get(key)?.storeKeys ?? []
  }

  /** The apt index keys noted on the route `prefix`, most recently stored first. */
  indexKeys(prefix: string): string[] {
    const keys: string[] = []
    for (const [key, noted] of this.#keys) if (noted.isIndex && noted.prefix === prefix) keys.push(key)
    return keys.reverse()
  }
}
