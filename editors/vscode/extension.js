// The nnc extension: the language `nnc` for `.net` files (highlighted by
// syntaxes/nnc.tmLanguage.json) and a client of `nnc lsp`, the language server, over stdio.
// Plain CommonJS: nothing to build beyond `npm install`.

'use strict';

const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

/** @type {LanguageClient | undefined} */
let client;

function createClient() {
    const command = vscode.workspace.getConfiguration('nnc').get('path') || 'nnc';
    /** @type {import('vscode-languageclient/node').ServerOptions} */
    const serverOptions = { command, args: ['lsp'] };
    /** @type {import('vscode-languageclient/node').LanguageClientOptions} */
    const clientOptions = {
        documentSelector: [
            { scheme: 'file', language: 'nnc' },
            { scheme: 'untitled', language: 'nnc' },
        ],
        synchronize: {
            // Imported files change what a model means: tell the server when any changes.
            fileEvents: vscode.workspace.createFileSystemWatcher('**/*.net'),
        },
    };
    return new LanguageClient('nnc', 'nnc language server', serverOptions, clientOptions);
}

async function start() {
    client = createClient();
    try {
        await client.start();
    } catch (error) {
        const command = vscode.workspace.getConfiguration('nnc').get('path') || 'nnc';
        vscode.window.showErrorMessage(
            `nnc: cannot start \`${command} lsp\` (${error && error.message ? error.message : error}). ` +
                'Install nnc (`cargo install --path cli`) or set `nnc.path`.'
        );
    }
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
    context.subscriptions.push(
        vscode.commands.registerCommand('nnc.restartServer', async () => {
            if (client) {
                await client.stop();
            }
            await start();
        }),
        vscode.workspace.onDidChangeConfiguration(async (event) => {
            if (event.affectsConfiguration('nnc.path')) {
                await vscode.commands.executeCommand('nnc.restartServer');
            }
        })
    );
    await start();
}

function deactivate() {
    return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
