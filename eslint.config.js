// eslint.config.js
// Lint rules for the whole tree (src, test, bench): typescript-eslint with type information.

import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/** `err as NodeJS.ErrnoException` and the like: read a caught error through errorCode() or a type guard instead. */
const CAUGHT_ERROR_CAST = {
  selector: 'TSAsExpression[expression.type="Identifier"][expression.name=/^(err|error|e|cause|reason)$/]',
  message: 'Do not cast a caught error with `as`: use errorCode() from src/errors.ts, instanceof, or a type guard.',
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's test() and describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/use-unknown-in-catch-callback-variable': 'error',
      'no-restricted-syntax': ['error', CAUGHT_ERROR_CAST],
      // A callback may read a variable assigned once after it is made (see TieredStore.open).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  // Exit codes live in the CLI's entry point only (bench scripts are entry points of their own).
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'Only src/cli.ts exits the process.' }],
    },
  },
  { files: ['eslint.config.js'], extends: [tseslint.configs.disableTypeChecked] },
)
