package commands

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
)

// The completion scripts ask the binary itself what may follow
// (--generate-bash-completion), so they stay right as commands and flags
// change.
const bashCompletion = `# bash completion for proglogctl: source <(proglogctl completion bash)
_proglogctl() {
    local cur words
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if [[ "$cur" == -* ]]; then
        words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
    else
        words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _proglogctl proglogctl
`

const zshCompletion = `#compdef proglogctl
# zsh completion for proglogctl: source <(proglogctl completion zsh)
_proglogctl() {
    local -a opts
    local cur=${words[-1]}
    if [[ "$cur" == -* ]]; then
        opts=("${(@f)$(${words[@]:0:#words[@]-1} $cur --generate-bash-completion 2>/dev/null)}")
    else
        opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
    fi
    if [[ -n "${opts[1]}" ]]; then
        _describe 'proglogctl' opts
    else
        _files
    fi
}
compdef _proglogctl proglogctl
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(proglogctl completion bash)",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return UsageError{Err: errors.New("completion: want one argument: bash, zsh or fish")}
			}
			w := c.App.Writer
			switch shell := c.Args().First(); shell {
			case "bash":
				_, err := fmt.Fprint(w, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(w, zshCompletion)
				return err
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(w, s)
				return err
			default:
				return UsageError{Err: fmt.Errorf("completion: unknown shell %q: want bash, zsh or fish", shell)}
			}
		},
	}
}
