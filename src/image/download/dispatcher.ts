// The default dispatcher: one per process, routed through HTTP(S)_PROXY when one is set.
import { Agent, type Dispatcher, EnvHttpProxyAgent } from 'undici';

let sharedDispatcher: Dispatcher | undefined;

/**
 * One dispatcher for every download, made on first use: an EnvHttpProxyAgent when a proxy variable is set,
 * else a plain Agent (the same routing, without undici 6's "EnvHttpProxyAgent is experimental" warning).
 */
export function defaultDispatcher(): Dispatcher {
  const env = process.env;
  const proxied = Boolean(env.http_proxy || env.HTTP_PROXY || env.https_proxy || env.HTTPS_PROXY);
  sharedDispatcher ??= proxied ? new EnvHttpProxyAgent(FORWARD_PLAIN_HTTP) : new Agent();
  return sharedDispatcher;
}

/**
 * http:// URLs go to an http proxy as plain absolute-URI requests, like curl does, rather than through CONNECT, which
 * proxies such as Squid refuse by default for port 80; https:// still tunnels. (Passed on to undici's ProxyAgent; not in
 * the EnvHttpProxyAgent option types of undici 6.)
 */
const FORWARD_PLAIN_HTTP: EnvHttpProxyAgent.Options & { proxyTunnel: boolean } = { proxyTunnel: false };
