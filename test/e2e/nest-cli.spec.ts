/**
 * nest-cli.json (the layout Nest users expect at the root) describes the sample apps so that
 * `nest build <project>` builds them with tsc: every project's tsconfig exists and compiles its
 * entry file, the output goes to a git-ignored folder that the package does not ship, and
 * `nest start <project>` would find the entry where tsc puts it. Static checks, fast, on Nest 12
 * and 11; the build itself runs in .ci/run ("Nest CLI builds the sample apps").
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface CompilerOptions {
  builder?: string | { type: string };
  webpack?: boolean;
  tsConfigPath?: string;
}
interface Project {
  type: string;
  root: string;
  sourceRoot: string;
  entryFile: string;
  compilerOptions?: CompilerOptions;
}
interface NestCliConfig {
  monorepo?: boolean;
  sourceRoot?: string;
  compilerOptions?: CompilerOptions;
  projects: Record<string, Project>;
}

const config = JSON.parse(readFileSync(join(root, 'nest-cli.json'), 'utf8')) as NestCliConfig;

/** A project's setting, else the top-level one (how the Nest CLI's getValueOrDefault reads them). */
function setting<K extends keyof CompilerOptions>(project: Project, key: K): CompilerOptions[K] {
  return project.compilerOptions?.[key] ?? config.compilerOptions?.[key];
}

/** tsc's view of a tsconfig, as the Nest CLI reads it (TsConfigProvider). */
function parseTsconfig(file: string): ts.ParsedCommandLine {
  const parsed = ts.getParsedCommandLineOfConfigFile(file, undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  });
  if (!parsed) throw new Error(`cannot read ${file}`);
  return parsed;
}

function gitIgnored(path: string): boolean {
  return spawnSync('git', ['check-ignore', '-q', path], { cwd: root }).status === 0;
}

const projects = Object.entries(config.projects ?? {});

describe('nest-cli.json', () => {
  it('is a monorepo of the sample apps: sample/server and sample/client', () => {
    expect(config.monorepo).toBe(true);
    expect(Object.fromEntries(projects.map(([name, p]) => [name, p.root]))).toEqual({ server: 'sample/server', client: 'sample/client' });
    // `nest build` without a project name builds the default one: the server.
    expect(config.sourceRoot).toBe(config.projects.server!.sourceRoot);
    expect(config.compilerOptions?.tsConfigPath).toBe(config.projects.server!.compilerOptions?.tsConfigPath);
  });

  describe.each(projects)('project %s', (_name, project) => {
    it('builds with tsc, not webpack', () => {
      expect(project.type).toBe('application');
      const builder = setting(project, 'builder');
      expect(typeof builder === 'string' ? builder : builder?.type).toBe('tsc');
      expect(setting(project, 'webpack')).toBe(false);
    });

    it('has a tsconfig that compiles its entry file into a git-ignored folder the package does not ship', () => {
      const tsconfig = setting(project, 'tsConfigPath');
      expect(tsconfig).toBeDefined();
      const parsed = parseTsconfig(join(root, tsconfig!));
      expect(parsed.errors).toEqual([]);
      const entry = resolve(root, project.sourceRoot, `${project.entryFile}.ts`);
      expect(existsSync(entry)).toBe(true);
      expect(parsed.fileNames.map((f) => resolve(f))).toContain(entry);
      // Decorator metadata (Nest's DI) and no noEmit.
      expect(parsed.options.emitDecoratorMetadata).toBe(true);
      expect(parsed.options.experimentalDecorators).toBe(true);
      expect(parsed.options.noEmit).toBeFalsy();

      const outDir = parsed.options.outDir!;
      expect(isAbsolute(outDir)).toBe(true);
      const out = relative(root, outDir);
      expect(out.startsWith('..')).toBe(false);
      expect(gitIgnored(join(out, 'main.js'))).toBe(true);
      const files = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] }).files;
      expect(files.some((f) => out === f || out.startsWith(`${f}/`))).toBe(false);

      // Where `nest start` looks for the built entry (start.action: outDir/sourceRoot/entryFile.js)
      // is where tsc writes it (outDir + the entry's path under rootDir).
      const rootDir = resolve(root, parsed.options.rootDir ?? '.');
      const emitted = join(outDir, relative(rootDir, entry)).replace(/\.ts$/, '.js');
      expect(emitted).toBe(join(outDir, project.sourceRoot, `${project.entryFile}.js`));
    });
  });
});
