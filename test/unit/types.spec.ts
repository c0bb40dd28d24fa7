/**
 * Typing checks (tsc over consumer files): the typed client registration compiles, and a typo in
 * its options (`ulr`) does not, in `register` or in a `registerAsync` factory.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** Type-checks one file with the project's compiler options; returns tsc's exit status and output. */
function typecheck(file: string): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wsmp-types-'));
  try {
    const config = join(dir, 'tsconfig.json');
    writeFileSync(
      config,
      JSON.stringify({
        extends: join(root, 'tsconfig.json'),
        compilerOptions: { noEmit: true, incremental: false, typeRoots: [join(root, 'node_modules', '@types')] },
        include: [],
        files: [join(root, 'test', 'types', file)],
      }),
    );
    const r = spawnSync(process.execPath, [tsc, '-p', config], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('typed client registration (tsc)', () => {
  it('WsMsgpackClientModule.register / registerAsync, the injected WsMsgpackClient and its status type compile', () => {
    const r = typecheck('registration.ok.ts');
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);

  it.each([
    ['register', 'registration.typo.ts'],
    ['registerAsync', 'registration.async-typo.ts'],
    ['registerAsync (an optional option: timout)', 'registration.async-optional-typo.ts'],
  ])(
    'a typo in %s options (ulr) does not compile',
    (_what, file) => {
      const r = typecheck(file);
      expect(r.status).not.toBe(0);
      expect(r.output).toMatch(/error TS\d+: .*(ulr|timout)/);
    },
    60_000,
  );

  it('a typo in a registerAsync factory is named in the message (not "not assignable to type never")', () => {
    const r = typecheck('registration.async-optional-typo.ts');
    expect(r.output).toMatch(/"timout is not an option of WsMsgpackClientOptions"/);
    expect(r.output).not.toMatch(/not assignable to type 'never'/);
  }, 60_000);
});
