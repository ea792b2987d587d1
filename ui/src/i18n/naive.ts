import { createLocale, dateEnUS, dateRuRU, enUS, ruRU } from 'naive-ui'
import type { Lang } from '.'

// naive-ui's own words (date pickers, empty tables, pagination) in the app's language.
// Inputs are labelled: no generic "Please Input" placeholder in them. English in sentence
// case like the rest of the app ("Start date", not "Start Date").
const ru = createLocale({
  Input: { placeholder: '' },
  InputNumber: { placeholder: '' },
  Select: { placeholder: '' },
  DatePicker: { weekPlaceholder: 'Выберите неделю', monthPlaceholder: 'Выберите месяц', yearPlaceholder: 'Выберите год', quarterPlaceholder: 'Выберите квартал' },
  TimePicker: { positiveText: 'Готово', negativeText: 'Отмена' },
}, ruRU)
const en = createLocale({
  Input: { placeholder: '' },
  InputNumber: { placeholder: '' },
  Select: { placeholder: '' },
  Cascader: { placeholder: '' },
  DatePicker: {
    selectTime: 'Select time',
    selectDate: 'Select date',
    datePlaceholder: 'Select date',
    datetimePlaceholder: 'Select date and time',
    monthPlaceholder: 'Select month',
    yearPlaceholder: 'Select year',
    quarterPlaceholder: 'Select quarter',
    weekPlaceholder: 'Select week',
    startDatePlaceholder: 'Start date',
    endDatePlaceholder: 'End date',
    startDatetimePlaceholder: 'Start date and time',
    endDatetimePlaceholder: 'End date and time',
    startMonthPlaceholder: 'Start month',
    endMonthPlaceholder: 'End month',
    // Weeks start on Monday in both languages (naive-ui counts Monday as 0).
    firstDayOfWeek: 0,
  },
  TimePicker: { placeholder: 'Select time' },
  Empty: { description: 'No data' },
  Pagination: { goto: 'Go to' },
}, enUS)

export const naiveLocale = (lang: Lang) => (lang === 'ru' ? ru : en)
export const naiveDateLocale = (lang: Lang) => (lang === 'ru' ? dateRuRU : dateEnUS)
