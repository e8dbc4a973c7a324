import type http from 'node:http';

/**
 * One group of HTTP routes (the dashboard, the metrics). Answers and resolves true when the
 * request is one of its own; resolves false, having touched nothing, otherwise. The HTTP
 * server and the daemon's listener try their handlers in order, then answer 404.
 */
export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean>;
