// Values several registry modules must agree on, defined once.

/** Docker Hub's names: what users write (docker.io), the old index, and the host its API is served from. */
export const DOCKER_HUB = ['docker.io', 'index.docker.io', 'registry-1.docker.io'] as const;

/** Where Docker Hub's registry API is (docker.io itself serves none). */
export const DOCKER_HUB_API = 'registry-1.docker.io';

/** Whether a registry host is Docker Hub, under any of its names. */
export function isDockerHub(registry: string): boolean {
  return (DOCKER_HUB as readonly string[]).includes(registry.toLowerCase());
}

/** HTTP statuses that redirect a read (registry API and token realm alike). */
export const REDIRECTS: readonly number[] = [301, 302, 303, 307, 308];

/** Redirects followed per request, at most: a loop ends here and its last answer is reported. */
export const MAX_HOPS = 5;
