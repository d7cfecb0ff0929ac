export function maskNumber(number: string): string;
export function maskNumbersInText(text: string): string;
export function shown(number: string | null | undefined, proxies: ReadonlySet<string>): string;
