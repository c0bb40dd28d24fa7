import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM key and certificate. */
export interface KeyPair {
  key: Buffer;
  cert: Buffer;
}

/** A test PKI: a CA, a server certificate for 127.0.0.1 / localhost, a client certificate, and an unrelated CA. */
export interface TestPki {
  ca: Buffer;
  server: KeyPair;
  /** Client certificate (CN `agent-1`, clientAuth), signed by `ca`. */
  client: KeyPair;
  /** A second, unrelated CA and a client certificate it signed (CN `intruder`). */
  otherCa: Buffer;
  otherClient: KeyPair;
}

/**
 * Generates a throwaway PKI with the system's `openssl` (EC P-256 keys: fast), in a temporary
 * directory that is removed before this returns.
 */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'wsmp-pki-'));
  const openssl = (...args: string[]): void => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
      if (err.code === 'ENOENT') throw new Error('openssl is not installed: the TLS tests generate their certificates with it (apt-get install -y openssl)', { cause: e });
      throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr?.toString() ?? err.message}`, { cause: e });
    }
  };
  const key = (name: string): void => openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  const ca = (name: string, cn: string): void => {
    key(name);
    openssl('req', '-x509', '-new', '-key', `${name}.key`, '-sha256', '-days', '2', '-subj', `/CN=${cn}`, '-out', `${name}.crt`);
  };
  const leaf = (name: string, cn: string, signer: string, ext: string): void => {
    key(name);
    openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${signer}.crt`,
      '-CAkey',
      `${signer}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    );
  };
  try {
    ca('ca', 'wsmp test CA');
    leaf('server', 'localhost', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    leaf('client', 'agent-1', 'ca', 'extendedKeyUsage=clientAuth\n');
    ca('other', 'some other CA');
    leaf('intruder', 'intruder', 'other', 'extendedKeyUsage=clientAuth\n');
    const read = (f: string): Buffer => readFileSync(join(dir, f));
    const pair = (name: string): KeyPair => ({ key: read(`${name}.key`), cert: read(`${name}.crt`) });
    return { ca: read('ca.crt'), server: pair('server'), client: pair('client'), otherCa: read('other.crt'), otherClient: pair('intruder') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
