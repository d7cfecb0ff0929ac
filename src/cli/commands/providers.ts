import type { ProviderView } from '../../services/providers.ts';
import { cliConfig, withVeil } from '../core.ts';
import { type Output, table } from '../output.ts';

/**
 * `veil providers list`: the enabled carriers, switched on or off, and their health as the database
 * records it (down when an instance found its calls failing). Error rates and latency are each
 * server's own: `GET /v1/providers` on a server shows them.
 */
export async function list(out: Output): Promise<void> {
  const providers = await withVeil(cliConfig(), (veil) => veil.providers.list());
  out.result({ data: providers }, () =>
    table([
      ['PROVIDER', 'ENABLED', 'HEALTH'],
      ...providers.map((p) => [p.name, p.enabled ? 'yes' : 'no', p.health]),
    ]),
  );
}

/** `veil providers disable|enable`: the one-click downgrade, and the recovery. */
export async function setEnabled(name: string, enabled: boolean, out: Output): Promise<void> {
  const provider: ProviderView = await withVeil(cliConfig(), (veil) =>
    veil.providers.setEnabled(name, enabled),
  );
  out.result(provider, () =>
    enabled
      ? `${name} is enabled: new sessions may get its numbers again`
      : `${name} is disabled: new sessions get no number of it, and a running server moves its open sessions to carriers in use`,
  );
}
