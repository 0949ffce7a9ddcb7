# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_vidvarctl_global_optspecs
    string join \n socket= service-user= json h/help V/version
end

function __fish_vidvarctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_vidvarctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_vidvarctl_using_subcommand
    set -l cmd (__fish_vidvarctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -s V -l version -d 'Print version'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "submit" -d 'Queue a job of N variations of each FILE; prints its id'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "status" -d 'Show one job in detail, or a summary line per job'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "watch" -d 'Follow a job\'s progress until it ends'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "outputs" -d 'List a job\'s outputs with their effects and quality figures'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "list" -d 'List jobs, a summary line each'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "priority" -d 'Change the priority of a queued or running job'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "pause" -d 'Pause the daemon, or one of your jobs'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "resume" -d 'Undo pause: of the daemon, or with JOB of that job'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "wait" -d 'Wait until every JOB has ended'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "cancel" -d 'Cancel a job: stop its FFmpeg processes and drop queued work'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "retry" -d 'Re-queue the variations of a job that did not succeed'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "ping" -d 'Check that vidvard answers: version, uptime, queue depth'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "nodes" -d 'List the vidvard nodes sharing the queue'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "top" -d 'Watch everything at a glance, full screen'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "metrics" -d 'Print the daemon\'s metrics for Prometheus'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "stats" -d 'Summarize the variations that ended lately'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "prune" -d 'Remove the records of finished jobs'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "folder" -d 'Watch folders: each video that lands in one becomes a job'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c vidvarctl -n "__fish_vidvarctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -s n -l variations -d 'Variations per input file (1..=1000)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -s p -l priority -d 'Higher runs first: queued work of a job of higher priority is started before any of lower priority; jobs of one priority take turns (-1000..=1000)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -s l -l label -d 'A label for the job, to select it by with `list --label` (repeatable, at most 16, or 15 for a folder, whose jobs also carry folder:ID; 1 to 64 bytes, no control characters)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -l seed -d 'Seed of the effect generator, to reproduce a job\'s effects' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -s o -l output-dir -d 'Directory for the outputs [default: the current directory]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -l watch -d 'Follow the job until it ends, as `watch` does'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand submit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand status" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand status" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand status" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand watch" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand watch" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand watch" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand outputs" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand outputs" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand outputs" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand outputs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -l label -d 'Only jobs with this label' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -l state -d 'Only jobs in this state (queued, running, succeeded, partial, failed, cancelled)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -l limit -d 'At most N jobs [default: all]' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -l after -d 'Only jobs after job JOB (the last one of the previous page)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand priority" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand priority" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand priority" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand priority" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand pause" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand pause" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand pause" -l stop -d 'Stop the running variations too, and queue them again (on a shared queue, with JOB: this node\'s variations only)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand pause" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand pause" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand resume" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand resume" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand resume" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand resume" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand wait" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand wait" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand wait" -l all -d 'Every queued or running job of yours'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand wait" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand wait" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand cancel" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand cancel" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand cancel" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand cancel" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand retry" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand retry" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand retry" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand retry" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand ping" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand ping" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand ping" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand ping" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand nodes" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand nodes" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand nodes" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand nodes" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand top" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand top" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand top" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand metrics" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand metrics" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand metrics" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand metrics" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand stats" -l since -d 'How far back: a number and a unit (s, m, h, d, w; also ms, min, M for months, y), or several, e.g. 24h, 7d, 90m, 1h30m' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand stats" -l label -d 'Only variations of jobs with this label' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand stats" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand stats" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand stats" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand prune" -l older-than -d 'Only jobs that finished at least this long ago: a number and a unit (s, m, h, d, w; also ms, min, M for months, y), or several, e.g. 7d, 12h, 30m, 1h30m' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand prune" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand prune" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand prune" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -f -a "add" -d 'Watch DIR: each settled video in it becomes a job; prints the folder\'s id'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -f -a "list" -d 'List your folders: id, state, files taken, directory and output directory'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -f -a "show" -d 'Show one folder with its settings'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -f -a "remove" -d 'Stop watching a folder (its jobs stay)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -f -a "pause" -d 'Pause a folder: nothing is taken from it until resume'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -f -a "resume" -d 'Resume a paused folder (it is scanned at once)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and not __fish_seen_subcommand_from add list show remove pause resume help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -s o -l output-dir -d 'Directory for the outputs' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -s n -l variations -d 'Variations per input file (1..=1000)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -s p -l priority -d 'Higher runs first: queued work of a job of higher priority is started before any of lower priority; jobs of one priority take turns (-1000..=1000)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -s l -l label -d 'A label for the job, to select it by with `list --label` (repeatable, at most 16, or 15 for a folder, whose jobs also carry folder:ID; 1 to 64 bytes, no control characters)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l settle -d 'Seconds a file\'s size and mtime must stay the same before it is taken' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l poll -d 'Seconds between rescans of the folder (use a short one on NFS or SMB mounts, where inotify sees nothing)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l after -d 'What to do with a file whose job succeeded: keep, delete, or move:DIR' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l failed -d 'What to do with a file whose job failed or was partial: keep or move:DIR (never deleted)' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l poll-only -d 'No inotify watch: find files by the rescans only'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l recursive -d 'Take files in subdirectories too'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from list" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from list" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from show" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from show" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from remove" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from remove" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from remove" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from pause" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from pause" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from pause" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from resume" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from resume" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from resume" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from help" -f -a "add" -d 'Watch DIR: each settled video in it becomes a job; prints the folder\'s id'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from help" -f -a "list" -d 'List your folders: id, state, files taken, directory and output directory'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one folder with its settings'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Stop watching a folder (its jobs stay)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from help" -f -a "pause" -d 'Pause a folder: nothing is taken from it until resume'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Resume a paused folder (it is scanned at once)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand folder; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand completions" -l socket -d 'vidvard\'s socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as root or the vidvar user, or when that does not exist, /run/vidvard/vidvard.sock]' -r -F
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand completions" -l service-user -d 'The user the system daemon runs as; a socket is trusted only when it and its directory belong to root, you or this user' -r
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand completions" -l json -d 'Print JSON instead of text: one document per command; for watch and submit --watch, one object per line, the last one final; errors as {"error": {"exit_status", "message"}}'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "submit" -d 'Queue a job of N variations of each FILE; prints its id'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "status" -d 'Show one job in detail, or a summary line per job'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "watch" -d 'Follow a job\'s progress until it ends'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "outputs" -d 'List a job\'s outputs with their effects and quality figures'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "list" -d 'List jobs, a summary line each'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "priority" -d 'Change the priority of a queued or running job'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "pause" -d 'Pause the daemon, or one of your jobs'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "resume" -d 'Undo pause: of the daemon, or with JOB of that job'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "wait" -d 'Wait until every JOB has ended'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "cancel" -d 'Cancel a job: stop its FFmpeg processes and drop queued work'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "retry" -d 'Re-queue the variations of a job that did not succeed'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "ping" -d 'Check that vidvard answers: version, uptime, queue depth'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "nodes" -d 'List the vidvard nodes sharing the queue'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "top" -d 'Watch everything at a glance, full screen'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "metrics" -d 'Print the daemon\'s metrics for Prometheus'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "stats" -d 'Summarize the variations that ended lately'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "prune" -d 'Remove the records of finished jobs'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "folder" -d 'Watch folders: each video that lands in one becomes a job'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and not __fish_seen_subcommand_from submit status watch outputs list priority pause resume wait cancel retry ping nodes top metrics stats prune folder completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and __fish_seen_subcommand_from folder" -f -a "add" -d 'Watch DIR: each settled video in it becomes a job; prints the folder\'s id'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and __fish_seen_subcommand_from folder" -f -a "list" -d 'List your folders: id, state, files taken, directory and output directory'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and __fish_seen_subcommand_from folder" -f -a "show" -d 'Show one folder with its settings'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and __fish_seen_subcommand_from folder" -f -a "remove" -d 'Stop watching a folder (its jobs stay)'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and __fish_seen_subcommand_from folder" -f -a "pause" -d 'Pause a folder: nothing is taken from it until resume'
complete -c vidvarctl -n "__fish_vidvarctl_using_subcommand help; and __fish_seen_subcommand_from folder" -f -a "resume" -d 'Resume a paused folder (it is scanned at once)'
