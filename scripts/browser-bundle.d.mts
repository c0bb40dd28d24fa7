// Types of scripts/browser-bundle.mjs, for test/support/browser.ts (tsconfig has no allowJs).
import type { Metafile } from 'esbuild';

export declare const ROOT: string;
export declare const DEFAULT_ENTRY: string;

/** Why an import path may not be in the browser bundle, or undefined when it may. */
export declare function forbiddenImport(path: string): string | undefined;

export interface BundleForBrowserOptions {
  /** Relative to the repository root, or absolute; default src/web/index.ts. */
  entry?: string;
  /** Default 'esm'. */
  format?: 'esm' | 'iife';
  /** The global the IIFE assigns the entry's exports to. */
  globalName?: string;
  /** Default false. */
  minify?: boolean;
}

export interface BrowserBundle {
  text: string;
  metafile: Metafile;
  /** The entry's absolute path. */
  entry: string;
}

/** Bundles an entry for the browser; rejects when it is missing, does not build, or pulls in a Node built-in, @nestjs/* or ws. */
export declare function bundleForBrowser(options?: BundleForBrowserOptions): Promise<BrowserBundle>;

/** Stops esbuild's service process (it is started again by the next build). */
export declare function stopEsbuild(): Promise<void>;
