import type en from './en'

const ru: typeof en = {
  app: { name: 'Callcard', language: 'Язык', logout: 'Выйти', menu: 'Главное меню' },
  nav: {
    console: 'Пульт', clients: 'Клиенты', deals: 'Сделки', tasks: 'Задачи',
    supervisor: 'Контроль', reports: 'Отчёты', schedules: 'Графики', admin: 'Администрирование',
  },
  role: { operator: 'Оператор', manager: 'Менеджер', supervisor: 'Супервизор', admin: 'Администратор' },
  status: {
    onDuty: 'на смене', offDuty: 'не на смене',     online: 'В сети', connecting: 'Подключение…', offline: 'Не в сети', onCall: 'На звонке',
    ringing: 'Входящий', ext: 'доб. {ext}', label: 'Мой статус',
  },
  login: {
    title: 'Вход в Callcard', username: 'Логин', password: 'Пароль', submit: 'Войти',
    failed: 'Неверный логин или пароль',
  },
  common: {
    save: 'Сохранить', cancel: 'Отмена', delete: 'Удалить', edit: 'Изменить', add: 'Добавить',
    search: 'Поиск', loading: 'Загрузка…', empty: 'Пока пусто',
    notAvailable: 'На этом сервере пока недоступно', saved: 'Сохранено', error: 'Ошибка',
    close: 'Закрыть', open: 'Открыть', all: 'Все', yes: 'Да', no: 'Нет', apply: 'Применить',
    reset: 'Сбросить', name: 'Имя', phone: 'Телефон', email: 'E-mail', total: 'Итого',
    from: 'С', to: 'По', refresh: 'Обновить',
  },
  call: {
    client: 'Клиент',     incoming: 'Входящий звонок', answered: 'Идёт разговор', ended: 'Звонок завершён',
    missed: 'Пропущенные', ringing: 'Звонит', unknown: 'Неизвестный номер', withheld: 'Номер скрыт',
    company: 'Компания', manager: 'Ответственный менеджер', deals: 'Открытые сделки',
    lastComms: 'Последние коммуникации', tasks: 'Открытые задачи',
    noCall: 'Сейчас звонков нет. Карточка появится здесь, как только зазвонит телефон.',
    newCard: 'Новая карточка клиента', afterNote: 'Заметка после звонка', saveNote: 'Сохранить заметку',
    callBack: 'Перезвонить', openCard: 'Открыть карточку', duration: 'Длительность',
    noMissed: 'Пропущенных нет', otherTab: 'Этот звонок показан в другой вкладке', dismiss: 'Скрыть',
    calling: 'Вызов…', callStarted: 'Сначала зазвонит ваш телефон', state: 'Состояние',
    agent: 'Сотрудник', caller: 'Кто звонит', startedAt: 'Начало', live: 'Звонки сейчас',
    noLive: 'Сейчас нет звонков', direction: 'Направление', disposition: 'Итог', talk: 'Разговор',
  },
  clients: {
    title: 'Клиенты', search: 'Имя, телефон (в любом виде) или e-mail', kind: 'Тип', person: 'Частное лицо',
    companyKind: 'Компания', group: 'Группа', segment: 'Сегмент', source: 'Источник',
    manager: 'Менеджер', unassigned: 'Без менеджера', views: 'Сохранённые виды', saveView: 'Сохранить вид',
    viewName: 'Название вида', import: 'Импорт', export: 'Экспорт', new: 'Новый клиент',
    found: 'Клиентов: {n}', importing: 'Импорт…', imported: 'Загружено {created} из {total}',
    importErrors: 'Ошибки', created: 'Создан', sort: 'Сортировка',
  },
  card: {
    details: 'Реквизиты', phones: 'Телефоны', emails: 'E-mail', position: 'Должность', address: 'Адрес',
    birthday: 'День рождения', timeline: 'Лента', deals: 'Сделки', tasks: 'Задачи', audit: 'Журнал',
    call: 'Позвонить', sms: 'SMS', note: 'Заметка', addNote: 'Добавить заметку', comment: 'Комментарий',
    addComment: 'Комментировать', smsText: 'Сообщение', send: 'Отправить', sent: 'Отправлено',
    optedOut: 'Отказался от SMS', emailSubject: 'Тема', emailBody: 'Текст',
    noTimeline: 'Коммуникаций пока нет', kinds: { call: 'Звонок', sms: 'SMS', email: 'Письмо', note: 'Заметка' },
    dir: { inbound: 'входящий', outbound: 'исходящий', internal: 'внутренний' },
    addPhone: 'Добавить телефон', addEmail: 'Добавить e-mail', label: 'Метка', number: 'Номер',
    changes: 'Изменения', action: 'Действие', who: 'Кто', when: 'Когда', recording: 'Запись',
  },
  deals: {
    title: 'Сделки', won: 'Успешно', lost: 'Проиграна', lostReason: 'Почему сделка проиграна?',
    amount: 'Сумма', dropWon: 'Перетащите сюда: успех', dropLost: 'Перетащите сюда: проигрыш',
  },
  tasks: {
    tomorrow: 'Завтра', later: 'Позже', new: 'Новая задача', assignee: 'Исполнитель', title: 'Задачи', today: 'Сегодня', overdue: 'Просрочено', upcoming: 'Предстоящие', done: 'Готово',
    snooze: 'Отложить на {min} мин', reminder: 'Напоминание', due: 'Срок',
  },
  supervisor: {
    title: 'Контроль', review: 'Прослушивание записей', unscored: 'Только без оценки',
    withRecording: 'С записью', minTalk: 'Разговор от, с', speed: 'Скорость', score: 'Оценка',
    scoreSaved: 'Оценка сохранена', criteria: {
      greeting: 'Приветствие', needs: 'Выявление потребности', solution: 'Предложение решения',
      politeness: 'Вежливость', closing: 'Завершение',
    }, comment: 'Комментарий', play: 'Слушать', pause: 'Пауза', select: 'Выберите звонок для прослушивания',
    scored: 'Оценён', seekBack: 'Назад 5 с', seekFwd: 'Вперёд 5 с',
  },
  status2: { answered: 'отвечен', missed: 'пропущен', busy: 'занято', abandoned: 'сброшен', failed: 'ошибка', queued: 'в очереди', sent: 'отправлено', delivered: 'доставлено', undelivered: 'не доставлено', received: 'получено', recorded: 'записано', ringing: 'звонит', originating: 'набор', ended: 'завершён' },
  reports: { title: 'Отчёты', calls: 'Звонки и продажи по дням', byManager: 'Продажи по менеджерам', funnel: 'Воронка: сделки, дошедшие до этапа', sources: 'Новые клиенты по источникам', callsIn: 'Входящие', callsOut: 'Исходящие', callsMissed: 'Пропущенные', sales: 'Продажи', plan: 'План' },
  schedules: { title: 'Графики', prev: 'Предыдущая неделя', next: 'Следующая неделя', onDuty: 'Сейчас на смене', shifts: 'Смены по неделе', weekday: 'День недели' },
  admin: {
    title: 'Администрирование', users: 'Пользователи', directories: 'Справочники', username: 'Логин',
    fullName: 'ФИО', role: 'Роль', extension: 'Внутренний номер', active: 'Активен',
    newUser: 'Новый пользователь', password: 'Пароль', system: 'Состояние системы', item: 'Элемент',
  },
}
export default ru
