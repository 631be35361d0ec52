// src/admin/ready.ts
// GET /_cachemir/ready: 503 until the disk index is loaded and the cache directory is writable,
// then 200 (a readiness probe: send no traffic before the mirror can store what it fetches).

import { access, constants } from 'node:fs/promises'
import { sendJson, type AdminEndpoint } from './router.js'

/** `isIndexed` tells whether the start-up scan of the disk cache has finished. */
export function readyEndpoint(cacheDir: string, isIndexed: () => boolean): AdminEndpoint {
  return {
    path: 'ready',
    methods: ['GET', 'HEAD'],
    handle: async (req, res) => {
      const writable = await access(cacheDir, constants.W_OK).then(
        () => true,
        () => false,
      )
      const indexed = isIndexed()
      const ready = indexed && writable
      sendJson(req, res, ready ? 200 : 503, { ready, indexLoaded: indexed, cacheDirWritable: writable })
    },
  }
}
