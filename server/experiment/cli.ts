export async function experimentCommand(_argv: string[]): Promise<void> {}
