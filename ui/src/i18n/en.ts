export default {
  app: { name: 'Callcard', language: 'Language', logout: 'Log out', menu: 'Main navigation' },
  nav: {
    console: 'Console', clients: 'Clients', deals: 'Deals', tasks: 'Tasks',
    supervisor: 'Supervisor desk', reports: 'Reports', schedules: 'Schedules', admin: 'Administration',
  },
  role: { operator: 'Operator', manager: 'Manager', supervisor: 'Supervisor', admin: 'Administrator' },
  status: {
    online: 'Online', connecting: 'Connecting…', offline: 'Offline', onCall: 'On a call',
    ringing: 'Ringing', ext: 'ext. {ext}', label: 'My status',
  },
  login: {
    title: 'Sign in to Callcard', username: 'Username', password: 'Password', submit: 'Sign in',
    failed: 'Wrong username or password',
  },
  common: {
    save: 'Save', cancel: 'Cancel', delete: 'Delete', edit: 'Edit', add: 'Add', search: 'Search',
    loading: 'Loading…', empty: 'Nothing here yet', notAvailable: 'Not available on this server yet',
    saved: 'Saved', error: 'Error', close: 'Close', open: 'Open', all: 'All', yes: 'Yes', no: 'No',
    apply: 'Apply', reset: 'Reset', name: 'Name', phone: 'Phone', email: 'E-mail', total: 'Total',
    from: 'From', to: 'To', refresh: 'Refresh',
  },
  call: {
    incoming: 'Incoming call', answered: 'In conversation', ended: 'Call ended', missed: 'Missed calls',
    ringing: 'Ringing', unknown: 'Unknown caller', withheld: 'Number withheld', company: 'Company',
    manager: 'Responsible manager', deals: 'Open deals', lastComms: 'Last communications',
    tasks: 'Open tasks', noCall: 'No call right now. The card pops up here when the phone rings.',
    newCard: 'New client card', afterNote: 'After-call note', saveNote: 'Save note',
    callBack: 'Call back', openCard: 'Open card', duration: 'Duration', noMissed: 'No missed calls',
    otherTab: 'This call is shown in another tab', dismiss: 'Dismiss', calling: 'Calling…',
    callStarted: 'Your phone will ring first', state: 'State', agent: 'Agent', caller: 'Caller',
    startedAt: 'Started', live: 'Live calls', noLive: 'No calls in progress', direction: 'Direction',
    disposition: 'Result', talk: 'Talk',
  },
  clients: {
    title: 'Clients', search: 'Name, phone (any form) or e-mail', kind: 'Kind', person: 'Person',
    companyKind: 'Company', group: 'Group', segment: 'Segment', source: 'Lead source',
    manager: 'Manager', unassigned: 'Unassigned', views: 'Saved views', saveView: 'Save view',
    viewName: 'View name', import: 'Import', export: 'Export', new: 'New client', found: '{n} clients',
    importing: 'Importing…', imported: 'Imported {created} of {total}', importErrors: 'Errors',
    created: 'Created', sort: 'Sort',
  },
  card: {
    details: 'Details', phones: 'Phones', emails: 'E-mails', position: 'Position', address: 'Address',
    birthday: 'Birthday', timeline: 'Timeline', deals: 'Deals', tasks: 'Tasks', audit: 'Audit',
    call: 'Call', sms: 'SMS', note: 'Note', addNote: 'Add note', comment: 'Comment',
    addComment: 'Add comment', smsText: 'Message', send: 'Send', sent: 'Sent', optedOut: 'Opted out of SMS',
    emailSubject: 'Subject', emailBody: 'Text', noTimeline: 'No communications yet', kinds: {
      call: 'Call', sms: 'SMS', email: 'E-mail', note: 'Note',
    },
    dir: { inbound: 'incoming', outbound: 'outgoing', internal: 'internal' },
    addPhone: 'Add phone', addEmail: 'Add e-mail', label: 'Label', number: 'Number',
    changes: 'Changes', action: 'Action', who: 'Who', when: 'When', recording: 'Recording',
  },
  deals: {
    title: 'Deals', won: 'Won', lost: 'Lost', lostReason: 'Why was it lost?', amount: 'Amount',
    dropWon: 'Drop here: won', dropLost: 'Drop here: lost',
  },
  tasks: {
    title: 'Tasks', today: 'Today', overdue: 'Overdue', upcoming: 'Upcoming', done: 'Done',
    snooze: 'Snooze {min} min', reminder: 'Reminder', due: 'Due',
  },
  supervisor: {
    title: 'Supervisor desk', review: 'Recordings review', unscored: 'Unscored only',
    withRecording: 'With recording', minTalk: 'Min. talk, s', speed: 'Speed', score: 'Score',
    scoreSaved: 'Score saved', criteria: {
      greeting: 'Greeting', needs: 'Needs found out', solution: 'Solution offered',
      politeness: 'Politeness', closing: 'Closing',
    }, comment: 'Comment', play: 'Play', pause: 'Pause', select: 'Pick a call to listen to it',
    scored: 'Scored', seekBack: 'Back 5 s', seekFwd: 'Forward 5 s',
  },
  reports: { title: 'Reports', calls: 'Calls by day', byManager: 'Calls by manager' },
  schedules: { title: 'Schedules' },
  admin: {
    title: 'Administration', users: 'Users', directories: 'Directories', username: 'Username',
    fullName: 'Full name', role: 'Role', extension: 'Extension', active: 'Active',
    newUser: 'New user', password: 'Password', system: 'System status', item: 'Item',
  },
}
