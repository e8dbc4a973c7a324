// MCP error codes Concord uses, in a module with no imports: a cluster member reads them
// without loading the MCP SDK.

/** MCP's "resource not found" (the SDK does not name it in its ErrorCode enum). */
export const RESOURCE_NOT_FOUND = -32002;
