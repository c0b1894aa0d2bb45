import { parseWwwAuthenticate } from '../src/www-authenticate';

describe('parseWwwAuthenticate', () => {
  it('parses a Docker Hub style bearer challenge with a comma inside a quoted scope', () => {
    const [c] = parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"',
    );
    expect(c).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.docker.io/token',
        service: 'registry.docker.io',
        scope: 'repository:library/alpine:pull,push',
      },
    });
  });

  it('splits several challenges in one header and across headers', () => {
    const challenges = parseWwwAuthenticate([
      'Basic realm="reg", Bearer realm="https://t/token", service=svc',
      'Negotiate',
    ]);
    expect(challenges.map((c) => c.scheme)).toEqual(['basic', 'bearer', 'negotiate']);
    expect(challenges[0].params).toEqual({ realm: 'reg' });
    expect(challenges[1].params).toEqual({ realm: 'https://t/token', service: 'svc' });
  });

  it('handles escapes, spaces around "=", case of names and an error parameter', () => {
    const [c] = parseWwwAuthenticate('bearer Realm = "a\\"b" , error="insufficient_scope"');
    expect(c.params).toEqual({ realm: 'a"b', error: 'insufficient_scope' });
  });

  it('returns nothing for absent or empty headers and survives token68 values', () => {
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('Basic dXNlcjpwYXNz==').map((c) => c.scheme)).toEqual(['basic']);
  });
});
