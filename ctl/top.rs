//! `vidvarctl top`: a full-screen dashboard (ratatui on crossterm) fed by
//! the daemon's push stream ([`Request::Top`]): the daemon's slots (every
//! live node's on a shared queue), queue depth and throughput, the running
//! variations (other nodes' too, their progress unknown), the jobs the user may
//! see (queued and running by priority, then those that ended lately),
//! recent failures. Keys act through a connection of their own, opened
//! for each action (the daemon closes a connection idle for a minute, and
//! top may sit idle for hours), with the CLI's own requests, so
//! permissions are exactly the CLI's. Owns the terminal
//! while it runs: raw mode and the alternate screen, given back on `q`,
//! Ctrl-C, SIGTERM, SIGINT, SIGHUP, a panic, and when the daemon goes
//! away. Redraws at most 4 times a second; `NO_COLOR` turns colour off.

use crate::commands::Failure;
use crate::render::{escape, escape_cut, eta, file_name, pad, percent, raw_file_name};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, List, ListItem, ListState, Paragraph, Wrap};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vidvar::client::{Client, ClientError};
use vidvar::proto::{ErrorKind, JobId, Request, Response, TopView};

/// Shortest time between two redraws: at most 4 a second.
const REDRAW_MIN: Duration = Duration::from_millis(250);

/// What the loop hears of.
enum Input {
    Frame(Box<TopView>),
    Gone(ClientError),
    Key(KeyEvent),
    Resize,
    /// SIGTERM, SIGINT or SIGHUP, by number.
    Signal(i32),
}

/// The terminal as `top` found it comes back when this is dropped.
struct Screen;

impl Screen {
    fn take() -> std::io::Result<Screen> {
        enable_raw_mode()?;
        execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            crossterm::cursor::Hide
        )?;
        Ok(Screen)
    }
}

/// Give the terminal back: cooked mode, the main screen, the cursor.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// What the user looks at and did.
#[derive(Default)]
struct State {
    view: Option<Box<TopView>>,
    selected: usize,
    /// The answer to the last key, for the status line.
    said: String,
    /// `Enter`'s detail of a job, shown over the rest until a key.
    detail: Option<String>,
    help: bool,
}

impl State {
    /// The jobs that can be selected: open ones, then those that ended.
    fn jobs(&self) -> Vec<JobId> {
        let Some(v) = &self.view else {
            return Vec::new();
        };
        v.open
            .iter()
            .map(|j| j.id)
            .chain(v.finished.iter().map(|f| f.job))
            .collect()
    }

    fn selected_job(&self) -> Option<JobId> {
        self.jobs().get(self.selected).copied()
    }
}

/// Run the dashboard: frames from `stream`, each action over a connection
/// `actions` opens for it.
///
/// Errors: the daemon went away ([`Failure::Client`]), the terminal
/// cannot be used ([`Failure::Local`]), or a signal ended it
/// ([`Failure::Signalled`], the terminal given back first).
pub async fn top(
    mut stream: Client,
    actions: impl AsyncFn() -> Result<Client, ClientError>,
) -> Result<(), Failure> {
    stream.send(&Request::Top).await?;
    let first = match stream.next().await? {
        Response::Top(view) => view,
        Response::Error(err) => return Err(Failure::Daemon(err)),
        _ => return Err(Failure::Local("unexpected answer to top".into())),
    };
    let (tx, mut inputs) = mpsc::unbounded_channel();
    let frames = tx.clone();
    tokio::spawn(async move {
        loop {
            let input = match stream.next().await {
                Ok(Response::Top(view)) => Input::Frame(view),
                Ok(_) => continue,
                Err(err) => Input::Gone(err),
            };
            let gone = matches!(input, Input::Gone(_));
            if frames.send(input).is_err() || gone {
                return;
            }
        }
    });
    let keys = tx.clone();
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            let input = match event {
                Event::Key(key) if key.kind != KeyEventKind::Release => Input::Key(key),
                Event::Resize(..) => Input::Resize,
                _ => continue,
            };
            if keys.send(input).is_err() {
                return;
            }
        }
    });
    for number in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let signals = tx.clone();
        let kind = tokio::signal::unix::SignalKind::from_raw(number);
        let mut signal = tokio::signal::unix::signal(kind)
            .map_err(|e| Failure::Local(format!("cannot watch signals: {e}")))?;
        tokio::spawn(async move {
            signal.recv().await;
            let _ = signals.send(Input::Signal(number));
        });
    }
    drop(tx);

    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        default_hook(info);
    }));
    let local = |e: std::io::Error| Failure::Local(format!("terminal: {e}"));
    let screen = Screen::take().map_err(local)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(local)?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut state = State {
        view: Some(first),
        ..State::default()
    };
    let mut drawn = Instant::now() - REDRAW_MIN;
    let mut dirty = true;
    let ended = loop {
        if dirty {
            let wait = REDRAW_MIN.saturating_sub(drawn.elapsed());
            if wait.is_zero() {
                terminal.draw(|f| draw(f, &state, color)).map_err(local)?;
                drawn = Instant::now();
                dirty = false;
            }
        }
        let next = if dirty {
            tokio::time::timeout(REDRAW_MIN.saturating_sub(drawn.elapsed()), inputs.recv()).await
        } else {
            Ok(inputs.recv().await)
        };
        let input = match next {
            Ok(Some(input)) => input,
            Ok(None) => break Ok(()),
            Err(_) => continue,
        };
        dirty = true;
        match input {
            Input::Frame(view) => {
                // The selection follows its job as the lists change.
                let was = state.selected_job();
                state.view = Some(view);
                let jobs = state.jobs();
                state.selected = was
                    .and_then(|id| jobs.iter().position(|j| *j == id))
                    .unwrap_or(state.selected.min(jobs.len().saturating_sub(1)));
            }
            Input::Gone(err) => break Err(Failure::Local(format!("the daemon went away: {err}"))),
            Input::Resize => terminal.autoresize().map_err(local)?,
            Input::Signal(number) => break Err(Failure::Signalled(number)),
            Input::Key(key) => {
                if quits(&key) {
                    break Ok(());
                }
                act(&mut state, &actions, key).await;
            }
        }
    };
    drop(terminal);
    drop(screen);
    ended
}

/// `q`, Esc (with nothing open) or Ctrl-C.
fn quits(key: &KeyEvent) -> bool {
    matches!(key.code, KeyCode::Char('q'))
        || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL))
}

/// What a key does (see [`HELP`]).
async fn act(
    state: &mut State,
    actions: &impl AsyncFn() -> Result<Client, ClientError>,
    key: KeyEvent,
) {
    if state.detail.take().is_some() || std::mem::take(&mut state.help) {
        return;
    }
    let jobs = state.jobs().len();
    let job = state.selected_job();
    let request = match key.code {
        KeyCode::Down | KeyCode::Char('j') => {
            state.selected = (state.selected + 1).min(jobs.saturating_sub(1));
            return;
        }
        KeyCode::Up | KeyCode::Char('k') => {
            state.selected = state.selected.saturating_sub(1);
            return;
        }
        KeyCode::Char('?') => {
            state.help = true;
            return;
        }
        KeyCode::Enter => job.map(|job| Request::Status { job }),
        KeyCode::Char('c') => job.map(|job| Request::Cancel { job }),
        KeyCode::Char('r') => job.map(|job| Request::Retry { job }),
        KeyCode::Char('p') => Some(Request::Pause { job, stop: false }),
        KeyCode::Char('P') => Some(Request::Resume { job }),
        _ => return,
    };
    let Some(request) = request else {
        state.said = "no job selected".into();
        return;
    };
    let what = match &request {
        Request::Status { .. } => "detail",
        Request::Cancel { .. } => "cancel",
        Request::Retry { .. } => "retry",
        Request::Pause { .. } => "pause",
        _ => "resume",
    };
    let target = job.map_or("the daemon".into(), |j| format!("job {j}"));
    let answer = match actions().await {
        Ok(mut client) => client.request(&request).await,
        Err(err) => Err(err),
    };
    state.said = match answer {
        Ok(Response::Job(detail)) if what == "detail" => {
            state.detail = Some(crate::render::detail(&detail));
            String::new()
        }
        Ok(Response::Job(detail)) => {
            format!("{what} {target}: now {}", detail.summary.state.as_str())
        }
        Ok(Response::Pong(_)) => format!("{what} {target}: done"),
        // "job 8 had already succeeded: nothing to cancel" names the job.
        Ok(Response::Error(err)) if err.kind == ErrorKind::Ended => escape(&err.message),
        Ok(Response::Error(err)) => format!("{what} {target}: {}", escape(&err.message)),
        Ok(_) => format!("{what} {target}: unexpected answer"),
        Err(err) => format!("{what} {target}: {err}"),
    };
}

/// The keys, for `?`.
const HELP: &str = "\
arrows, j/k  select a job
Enter        the job in detail (as vidvarctl status JOB)
c            cancel the job
r            retry the job (one that ended)
p / P        pause / resume the job
             (the daemon when no job is selected: root or its user)
q, Ctrl-C    quit
?            this help; any key closes it";

fn draw(f: &mut ratatui::Frame, state: &State, color: bool) {
    let Some(v) = &state.view else {
        return;
    };
    let area = f.area();
    let nodes = nodes_line(v);
    let [header, running, jobs, recent, footer] = regions(area, 3 + u16::from(nodes.is_some()));
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let depth: Vec<String> = v
        .jobs_by_state
        .iter()
        .map(|(s, n)| format!("{} {n}", s.as_str()))
        .collect();
    let node = v
        .daemon
        .node
        .as_ref()
        .map_or(String::new(), |n| format!(" node {}", escape(n)));
    let mut lines = vec![
        Line::styled(
            format!(
                "vidvard {}{node}  slots {}/{}{}  queued variations {}",
                v.daemon.daemon_version,
                v.busy,
                v.slots,
                if v.daemon.paused { "  PAUSED" } else { "" },
                v.variations_queued
            ),
            bold,
        ),
        Line::raw(format!("jobs: {}", depth.join(", "))),
        Line::raw(format!(
            "last minute {:.1} variations/min, {:.2} s/s encoded   last hour {:.1}/min, {:.2} s/s",
            v.last_minute.variations_per_min,
            v.last_minute.encoded_per_sec,
            v.last_hour.variations_per_min,
            v.last_hour.encoded_per_sec
        )),
    ];
    lines.extend(nodes.map(Line::raw));
    f.render_widget(Paragraph::new(lines), header);

    let bar_width = usize::from(running.width.saturating_sub(68)).clamp(5, 40);
    let items: Vec<ListItem> = v
        .running
        .iter()
        .map(|r| {
            ListItem::new(format!(
                "{:>5} {} #{:<3} {} {:>4} {:>5} fps {:>6} {}{}",
                r.job,
                pad(&escape_cut(&raw_file_name(&r.input), 16), 16),
                r.index,
                bar(r.percent, bar_width),
                r.percent.map_or("-".into(), percent),
                r.fps.map_or("-".into(), |f| format!("{f:.0}")),
                r.speed.map_or("-".into(), |s| format!("{s:.2}x")),
                eta(r.eta_secs),
                r.node
                    .as_ref()
                    .map_or(String::new(), |n| format!(" on {}", escape(n)))
            ))
        })
        .collect();
    let mut bar_style = Style::default();
    if color {
        bar_style = bar_style.fg(Color::Green);
    }
    f.render_widget(
        List::new(items)
            .style(bar_style)
            .block(Block::bordered().title(" running ")),
        running,
    );

    let whose = if v.everyone { "all jobs" } else { "your jobs" };
    let mut items: Vec<ListItem> = v
        .open
        .iter()
        .map(|j| {
            ListItem::new(format!(
                "{:>5} {:<10} prio {:>5} {:>5}  {}",
                j.id,
                format!("{}{}", j.state.as_str(), if j.paused { "*" } else { "" }),
                j.priority,
                percent(j.progress),
                escape(j.labels.join(","))
            ))
        })
        .collect();
    items.extend(v.finished.iter().map(|j| {
        ListItem::new(format!(
            "{:>5} {:<10} worst SSIM {}",
            j.job,
            j.state.as_str(),
            j.worst_ssim.map_or("-".into(), |s| format!("{s:.4}"))
        ))
    }));
    let mut list_state = ListState::default().with_selected(Some(state.selected));
    f.render_stateful_widget(
        List::new(items)
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .block(Block::bordered().title(format!(" {whose}: queued and running, then ended "))),
        jobs,
        &mut list_state,
    );

    let failures: Vec<ListItem> = v
        .failures
        .iter()
        .map(|x| {
            ListItem::new(format!(
                "{:>5} {}: {}",
                x.job,
                file_name(&x.input),
                escape(x.error.lines().next().unwrap_or_default())
            ))
        })
        .collect();
    f.render_widget(
        List::new(failures).block(Block::bordered().title(" recent failures ")),
        recent,
    );
    let footer_text = if state.said.is_empty() {
        "q quit  ? help  j/k select  Enter detail  c cancel  r retry  p/P pause/resume".into()
    } else {
        state.said.clone()
    };
    f.render_widget(Paragraph::new(footer_text), footer);

    if let Some(detail) = &state.detail {
        popup(f, area, " job ", detail);
    } else if state.help {
        popup(f, area, " keys ", HELP);
    }
}

/// The parts of the screen, top to bottom: the header (`header_lines`
/// rows), the running variations, the jobs, the recent failures and the
/// key hint line. The header and then the hint line are kept whole as long
/// as the screen has rows for them; the three lists share what is left,
/// and shrink (to nothing, on a screen a few rows high) first.
fn regions(area: Rect, header_lines: u16) -> [Rect; 5] {
    let header = header_lines.min(area.height);
    let footer = u16::from(area.height > header);
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(header),
        Constraint::Length(area.height - header - footer),
        Constraint::Length(footer),
    ])
    .areas(area);
    let [running, jobs, recent] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Min(5),
        Constraint::Length(5),
    ])
    .areas(body);
    [header, running, jobs, recent, footer]
}

/// A progress bar `width` characters inside its brackets: `[###...]`;
/// blank when the progress is unknown (another node's variation).
fn bar(percent: Option<f64>, width: usize) -> String {
    let Some(percent) = percent else {
        return format!("[{}]", " ".repeat(width));
    };
    let filled = (((percent / 100.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// On a shared queue, every live node's running variations and slots:
/// `nodes: a 2/2, b 0/1`; `None` on one machine.
fn nodes_line(v: &TopView) -> Option<String> {
    if v.nodes.is_empty() {
        return None;
    }
    let nodes: Vec<String> = v
        .nodes
        .iter()
        .map(|n| format!("{} {}/{}", escape(&n.name), n.running, n.slots))
        .collect();
    Some(format!("nodes: {}", nodes.join(", ")))
}

/// `text` in a box over the middle of `area`.
fn popup(f: &mut ratatui::Frame, area: Rect, title: &str, text: &str) {
    let inner = Rect {
        x: area.x + area.width / 10,
        y: area.y + area.height / 8,
        width: area.width - area.width / 5,
        height: area.height - area.height / 4,
    };
    f.render_widget(Clear, inner);
    f.render_widget(
        Paragraph::new(text.to_owned())
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title.to_owned())),
        inner,
    );
}
