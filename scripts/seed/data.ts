/**
 * The vocabulary of the seed: people in several scripts (each name with the Latin spelling its
 * email uses), their country's phone prefix, currency and tax rate, and a small product catalogue.
 */
export interface Locale {
  code: string
  weight: number
  /** [native, latin] pairs. */
  given: Array<[string, string]>
  family: Array<[string, string]>
  /** Family name first, no space (Chinese, Japanese, Korean). */
  familyFirst: boolean
  phonePrefix: string
  phoneDigits: number
  currency: string
  taxRate: number
  cities: string[]
  country: string
}

const pairs = (s: string): Array<[string, string]> =>
  s.split(',').map((p) => {
    const [a, b] = p.split(':')
    return [a!.trim(), (b ?? a!).trim()]
  })

export const LOCALES: Locale[] = [
  {
    code: 'zh', weight: 30, familyFirst: true, phonePrefix: '+86', phoneDigits: 11, currency: 'CNY', taxRate: 13, country: 'CN',
    given: pairs('伟:wei,芳:fang,娜:na,敏:min,静:jing,丽:li,强:qiang,磊:lei,军:jun,洋:yang,勇:yong,艳:yan,杰:jie,娟:juan,涛:tao,明:ming,超:chao,秀英:xiuying,霞:xia,平:ping'),
    family: pairs('王:wang,李:li,张:zhang,刘:liu,陈:chen,杨:yang,黄:huang,赵:zhao,吴:wu,周:zhou,徐:xu,孙:sun,马:ma,朱:zhu,胡:hu,郭:guo'),
    cities: ['上海', '北京', '深圳', '广州', '成都', '杭州'],
  },
  {
    code: 'en', weight: 25, familyFirst: false, phonePrefix: '+1', phoneDigits: 10, currency: 'USD', taxRate: 8, country: 'US',
    given: pairs('James,Mary,Robert,Patricia,John,Jennifer,Michael,Linda,David,Elizabeth,William,Barbara,Richard,Susan,Joseph,Jessica,Thomas,Sarah,Olivia,Noah'),
    family: pairs('Smith,Johnson,Williams,Brown,Jones,Garcia,Miller,Davis,Rodriguez,Martinez,Hernandez,Lopez,Wilson,Anderson,Taylor,Moore'),
    cities: ['New York', 'Austin', 'Seattle', 'Chicago', 'Denver', 'Boston'],
  },
  {
    code: 'ru', weight: 10, familyFirst: false, phonePrefix: '+7', phoneDigits: 10, currency: 'RUB', taxRate: 20, country: 'RU',
    given: pairs('Александр:aleksandr,Мария:maria,Дмитрий:dmitry,Анна:anna,Сергей:sergey,Елена:elena,Иван:ivan,Ольга:olga,Михаил:mikhail,Наталья:natalya'),
    family: pairs('Иванов:ivanov,Смирнов:smirnov,Кузнецов:kuznetsov,Попов:popov,Волков:volkov,Соколов:sokolov,Лебедев:lebedev,Козлов:kozlov'),
    cities: ['Москва', 'Санкт-Петербург', 'Казань', 'Новосибирск'],
  },
  {
    code: 'ar', weight: 10, familyFirst: false, phonePrefix: '+971', phoneDigits: 9, currency: 'AED', taxRate: 5, country: 'AE',
    given: pairs('محمد:mohammed,فاطمة:fatima,أحمد:ahmed,عائشة:aisha,علي:ali,مريم:maryam,عمر:omar,ليلى:layla,يوسف:youssef,نور:nour'),
    family: pairs('العلي:alali,الحسن:alhassan,المنصور:almansour,الخطيب:alkhatib,السيد:alsayed,حداد:haddad,ناصر:nasser,سليمان:suleiman'),
    cities: ['دبي', 'أبوظبي', 'الشارقة'],
  },
  {
    code: 'es', weight: 8, familyFirst: false, phonePrefix: '+34', phoneDigits: 9, currency: 'EUR', taxRate: 21, country: 'ES',
    given: pairs('José:jose,Lucía:lucia,Javier:javier,Sofía:sofia,Álvaro:alvaro,Martina:martina,Pablo:pablo,Paula:paula,Hugo:hugo,Elena'),
    family: pairs('García:garcia,Fernández:fernandez,González:gonzalez,Rodríguez:rodriguez,López:lopez,Martínez:martinez,Sánchez:sanchez,Pérez:perez'),
    cities: ['Madrid', 'Barcelona', 'Valencia', 'Sevilla'],
  },
  {
    code: 'de', weight: 7, familyFirst: false, phonePrefix: '+49', phoneDigits: 10, currency: 'EUR', taxRate: 19, country: 'DE',
    given: pairs('Jürgen:juergen,Anna,Lukas,Lea,Jonas,Hannah,Felix,Sophie,Maximilian,Emilia,Björn:bjoern,Käthe:kaethe'),
    family: pairs('Müller:mueller,Schmidt,Schneider,Fischer,Weber,Meyer,Wagner,Becker,Schäfer:schaefer,Koch'),
    cities: ['Berlin', 'München', 'Hamburg', 'Köln'],
  },
  {
    code: 'ja', weight: 5, familyFirst: true, phonePrefix: '+81', phoneDigits: 10, currency: 'JPY', taxRate: 10, country: 'JP',
    given: pairs('翔太:shota,陽菜:hina,蓮:ren,結衣:yui,大翔:hiroto,さくら:sakura,健太:kenta,美咲:misaki'),
    family: pairs('佐藤:sato,鈴木:suzuki,高橋:takahashi,田中:tanaka,伊藤:ito,渡辺:watanabe,山本:yamamoto,中村:nakamura'),
    cities: ['東京', '大阪', '名古屋', '福岡'],
  },
  {
    code: 'hi', weight: 5, familyFirst: false, phonePrefix: '+91', phoneDigits: 10, currency: 'INR', taxRate: 18, country: 'IN',
    given: pairs('आरव:aarav,अनन्या:ananya,विवान:vivaan,दीया:diya,अर्जुन:arjun,सान्वी:saanvi,रोहन:rohan,प्रिया:priya'),
    family: pairs('शर्मा:sharma,वर्मा:verma,गुप्ता:gupta,सिंह:singh,कुमार:kumar,पटेल:patel,रेड्डी:reddy,जोशी:joshi'),
    cities: ['मुंबई', 'दिल्ली', 'बेंगलुरु', 'पुणे'],
  },
]

export const EMAIL_DOMAINS = ['gmail.com', 'outlook.com', 'yahoo.com', 'qq.com', '163.com', 'mail.ru', 'icloud.com', 'proton.me', 'example.com']
export const TAGS = ['vip', 'newsletter', 'b2b', 'wholesale', 'student', 'influencer', 'employee', 'beta', 'high_value', 'gift_buyer', 'eco', 'mobile_app']
export const INTERESTS = ['tea', 'coffee', 'running', 'cooking', 'gaming', 'travel', 'photography', 'fashion', 'skincare', 'books', 'music', 'outdoor']
export const ACQUISITION_SOURCES = ['organic', 'direct', 'referral', 'paid_search', 'paid_social', 'social', 'email', 'event', 'partner', 'store', 'call_center', 'import', 'other']
export const ACQUISITION_WEIGHTS = [20, 15, 10, 14, 12, 8, 6, 3, 3, 5, 2, 1, 1]
export const PREFERRED_CHANNELS = ['email', 'phone', 'sms', 'chat', 'mail', 'in_person', 'social']
export const GENDERS = ['female', 'male', 'non_binary', 'other', 'unknown']
export const GENDER_WEIGHTS = [47, 46, 2, 1, 4]
export const MARITAL = ['single', 'married', 'divorced', 'widowed', 'separated', 'domestic_partnership', 'unknown']
export const OCCUPATIONS = ['engineer', 'teacher', 'designer', 'nurse', 'student', 'manager', 'accountant', 'chef', 'retired', 'entrepreneur']
export const COMPANIES = ['Acme Ltd', 'Globex', 'Initech', 'Umbrella Trading', '华为', 'Яндекс', 'Siemens', 'Tata', null]
export const SOCIAL_NETWORKS = ['wechat', 'weibo', 'whatsapp', 'line', 'telegram', 'linkedin', 'x', 'instagram', 'tiktok']

export const ORDER_CHANNELS = ['online', 'store', 'phone', 'partner', 'marketplace', 'social', 'other']
export const ORDER_CHANNEL_WEIGHTS = [45, 20, 5, 5, 15, 8, 2]
export const PAYMENT_METHODS = ['card', 'cash', 'bank_transfer', 'wallet', 'credit', 'cod', 'other']
export const PAYMENT_WEIGHTS = [40, 8, 6, 35, 4, 5, 2]
export const ORDER_STATUSES = ['fulfilled', 'paid', 'pending', 'cancelled', 'refunded', 'partially_refunded']
export const ORDER_STATUS_WEIGHTS = [70, 9, 8, 7, 3, 3]

export interface Product {
  sku: string
  name: string
  category: string
  /** Price in minor units. */
  price: number
}

const CATALOGUE: Array<[string, string, number]> = [
  ['Oolong tea 250 g', 'tea', 8900], ['Jasmine green tea', 'tea', 4500], ['Pu-erh cake 357 g', 'tea', 26800],
  ['Espresso beans 1 kg', 'coffee', 3290], ['Pour-over kettle', 'kitchen', 5900], ['Ceramic teapot', 'kitchen', 12800],
  ['Running shoes', 'sport', 11900], ['Yoga mat', 'sport', 3500], ['Rain jacket', 'apparel', 8900], ['Wool socks (3 pairs)', 'apparel', 1990],
  ['Face serum 30 ml', 'beauty', 4600], ['Sunscreen SPF50', 'beauty', 1890], ['Wireless earbuds', 'electronics', 14900],
  ['USB-C charger 65 W', 'electronics', 3990], ['Notebook A5', 'stationery', 690], ['Fountain pen', 'stationery', 4200],
  ['Gift card', 'gift', 5000], ['Travel backpack', 'bags', 9900], ['Desk lamp', 'home', 4990], ['Scented candle', 'home', 1590],
]

export const PRODUCTS: Product[] = CATALOGUE.map(([name, category, price], i) => ({
  sku: `SKU-${String(1000 + i)}`, name, category, price,
}))

export const INTERACTION_CHANNELS = ['phone', 'email', 'sms', 'chat', 'meeting', 'visit', 'event', 'social', 'other']
export const INTERACTION_CHANNEL_WEIGHTS = [15, 30, 10, 25, 3, 5, 2, 8, 2]
export const DIRECTIONS = ['inbound', 'outbound', 'internal']
export const OUTCOMES = ['completed', 'no_answer', 'voicemail', 'left_message', 'follow_up', 'resolved', 'escalated', 'not_interested', 'other']
export const SUBJECTS = ['Order status question', 'Delivery delayed', 'Product recommendation', 'Return request', 'Invoice copy', 'Loyalty points',
  'Size exchange', 'Welcome call', 'Renewal reminder', '关于退货', 'Вопрос о доставке', 'استفسار عن الطلب', null]
export const AGENTS = ['agent:li.na', 'agent:j.smith', 'agent:o.petrova', 'agent:a.haddad', 'agent:m.garcia', 'bot:assistant']

export const FEEDBACK_KINDS = ['survey', 'complaint', 'suggestion', 'review', 'praise']
export const FEEDBACK_KIND_WEIGHTS = [55, 12, 8, 20, 5]
export const FEEDBACK_CHANNELS = ['email', 'web', 'app', 'store', 'phone', 'chat', 'social']
export const COMPLAINT_STATUSES = ['open', 'in_progress', 'resolved', 'closed']
export const COMPLAINT_STATUS_WEIGHTS = [15, 10, 35, 40]
export const PRIORITIES = ['low', 'normal', 'high', 'urgent']
