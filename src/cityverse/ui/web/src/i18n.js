// The dashboard's words in English, French and Arabic (right to left).

const STRINGS = {
  en: {
    signIn: 'Sign in', signOut: 'Sign out', account: 'Account', cancel: 'Cancel',
    signInTitle: 'Sign in to the twin', credential: 'API key or access token',
    credentialHint: 'An API key (cvk_…, from "cityverse keys create") or an access token from the city\'s identity provider. It is kept only until this browser session ends.',
    signingIn: 'Checking…', credentialEmpty: 'Paste an API key or an access token.',
    credentialMalformed: 'This is not an API key or an access token: it is one word, without spaces.',
    credentialRefused: 'This key or token is not accepted (wrong, revoked or expired): {0}',
    signInFailed: 'The key could not be checked: {0}',
    noRole: 'This key or token gives no role in this city.', signedInAs: '{0} ({1})',
    sessionEnded: 'Your key was revoked or has expired: sign in again.',
    notPublic: "This city's data is not open to the public: sign in with an API key or an access token.",
    forbidden: 'Your role does not allow this: {0}',
    noBaseline: 'No baseline run yet: run a scenario.', preset_drought20: 'Drought: demand −20 %', preset_drought40: 'Drought: demand −40 %', preset_leakage: 'Leakage at today\'s pressure',
    skipToMap: 'Skip to the map', search: 'Search', searchPlaceholder: 'Search by id, name or type',
    searchResults: 'Search results', noResults: 'No match', language: 'Language', controls: 'Controls',
    details: 'Details', layers: 'Layers', view3d: '3D view', kpis: 'Water KPIs', scenarios: 'Water scenarios',
    alerts: 'Alerts', mapLabel: 'Map of the city', inspector: 'Entity', chart: 'History',
    pickEntity: 'Select an asset on the map or search for one.',
    pickAttribute: 'Choose an attribute of the entity to chart it.',
    time: 'Time', timeWindow: 'Time window', timeSlider: "Time of the twin's state", now: 'Now',
    h6: '6 hours', h24: '24 hours', d7: '7 days', d30: '30 days',
    liveOn: 'Live', liveOff: 'Live: off', liveUnavailable: 'Live: not available',
    notAvailable: 'not available', loading: 'Loading…', failed: 'Could not load: {0}',
    layer_buildings: 'Buildings', layer_water: 'Water network', layer_sensors: 'Sensors',
    layer_alerts: 'Alerts', layer_streetlights: 'Streetlights', layer_waste: 'Waste containers',
    layer_parking: 'Parking', layer_reports: "Citizens' reports",
    attribute: 'Attribute', value: 'Value', kind: 'Kind', observedAt: 'Observed', chartIt: 'Chart',
    chartOf: 'Chart {0}', open: 'Open {0}', noAlerts: 'No open alert.', acknowledge: 'Acknowledge',
    assign: 'Assign', assignee: 'Assignee', status: 'Status', severity: 'Severity', show: 'Show on map',
    saved: 'Saved', replaying: 'State at {0}', replayUnavailable: 'History: not available',
    measured: 'measured', simulated: 'simulated', noHistory: 'No history for this attribute.',
    waterBalance: 'Water balance', nrw: 'Non-revenue water', pressureAdequacy: 'Pressure adequacy',
    kpiUnavailable: 'Water KPIs: not available', scenarioUnavailable: 'Scenario runner: not available',
    scenario: 'Scenario', run: 'Run', baseline: 'Baseline', result: 'Scenario', difference: 'Change',
    running: 'Running…', kpi: 'KPI', close: 'Close', entities: '{0} entities',
    candidates: 'Pipes to search', layer_streets: 'Streets', hourlyMean: 'hourly mean',
  },
  fr: {
    signIn: 'Se connecter', signOut: 'Se déconnecter', account: 'Compte', cancel: 'Annuler',
    signInTitle: 'Se connecter au jumeau', credential: 'Clé d’API ou jeton d’accès',
    credentialHint: 'Une clé d’API (cvk_…, créée par « cityverse keys create ») ou un jeton d’accès du fournisseur d’identité de la ville. Elle n’est gardée que jusqu’à la fin de cette session du navigateur.',
    signingIn: 'Vérification…', credentialEmpty: 'Collez une clé d’API ou un jeton d’accès.',
    credentialMalformed: 'Ce n’est ni une clé d’API ni un jeton d’accès : c’est un seul mot, sans espace.',
    credentialRefused: 'Cette clé ou ce jeton n’est pas accepté (erroné, révoqué ou expiré) : {0}',
    signInFailed: 'La clé n’a pas pu être vérifiée : {0}',
    noRole: 'Cette clé ou ce jeton ne donne aucun rôle dans cette ville.', signedInAs: '{0} ({1})',
    sessionEnded: 'Votre clé a été révoquée ou a expiré : connectez-vous à nouveau.',
    notPublic: 'Les données de cette ville ne sont pas ouvertes au public : connectez-vous avec une clé d’API ou un jeton d’accès.',
    forbidden: 'Votre rôle ne le permet pas : {0}',
    noBaseline: 'Pas encore de simulation de référence : lancez un scénario.', preset_drought20: 'Sécheresse : demande −20 %', preset_drought40: 'Sécheresse : demande −40 %', preset_leakage: 'Fuites à la pression actuelle',
    skipToMap: 'Aller à la carte', search: 'Rechercher', searchPlaceholder: 'Rechercher par id, nom ou type',
    searchResults: 'Résultats de recherche', noResults: 'Aucun résultat', language: 'Langue', controls: 'Commandes',
    details: 'Détails', layers: 'Couches', view3d: 'Vue 3D', kpis: 'Indicateurs eau', scenarios: 'Scénarios eau',
    alerts: 'Alertes', mapLabel: 'Carte de la ville', inspector: 'Entité', chart: 'Historique',
    pickEntity: 'Choisissez un équipement sur la carte ou recherchez-le.',
    pickAttribute: "Choisissez un attribut de l'entité pour en tracer la courbe.",
    time: 'Temps', timeWindow: 'Fenêtre de temps', timeSlider: 'Instant de l’état du jumeau', now: 'Maintenant',
    h6: '6 heures', h24: '24 heures', d7: '7 jours', d30: '30 jours',
    liveOn: 'En direct', liveOff: 'Direct : arrêté', liveUnavailable: 'Direct : non disponible',
    notAvailable: 'non disponible', loading: 'Chargement…', failed: 'Chargement impossible : {0}',
    layer_buildings: 'Bâtiments', layer_water: 'Réseau d’eau', layer_sensors: 'Capteurs',
    layer_alerts: 'Alertes', layer_streetlights: 'Éclairage public', layer_waste: 'Conteneurs à déchets',
    layer_parking: 'Stationnement', layer_reports: 'Signalements citoyens',
    attribute: 'Attribut', value: 'Valeur', kind: 'Nature', observedAt: 'Observé', chartIt: 'Courbe',
    chartOf: 'Tracer {0}', open: 'Ouvrir {0}', noAlerts: 'Aucune alerte ouverte.', acknowledge: 'Acquitter',
    assign: 'Affecter', assignee: 'Responsable', status: 'État', severity: 'Gravité', show: 'Voir sur la carte',
    saved: 'Enregistré', replaying: 'État au {0}', replayUnavailable: 'Historique : non disponible',
    measured: 'mesuré', simulated: 'simulé', noHistory: "Pas d'historique pour cet attribut.",
    waterBalance: 'Bilan hydrique', nrw: 'Eau non facturée', pressureAdequacy: 'Pression suffisante',
    kpiUnavailable: 'Indicateurs eau : non disponibles', scenarioUnavailable: 'Scénarios : non disponibles',
    scenario: 'Scénario', run: 'Lancer', baseline: 'Référence', result: 'Scénario', difference: 'Écart',
    running: 'Calcul…', kpi: 'Indicateur', close: 'Fermer', entities: '{0} entités',
    candidates: 'Conduites à inspecter', layer_streets: 'Rues', hourlyMean: 'moyenne horaire',
  },
  ar: {
    signIn: 'تسجيل الدخول', signOut: 'تسجيل الخروج', account: 'الحساب', cancel: 'إلغاء',
    signInTitle: 'تسجيل الدخول إلى التوأم', credential: 'مفتاح API أو رمز الوصول',
    credentialHint: 'مفتاح API (cvk_…، يُنشأ بالأمر «cityverse keys create») أو رمز وصول من مزوّد هوية المدينة. لا يُحفظ إلا حتى نهاية جلسة المتصفح هذه.',
    signingIn: 'جارٍ التحقق…', credentialEmpty: 'الصق مفتاح API أو رمز وصول.',
    credentialMalformed: 'هذا ليس مفتاح API ولا رمز وصول: إنه كلمة واحدة دون مسافات.',
    credentialRefused: 'هذا المفتاح أو الرمز غير مقبول (خاطئ أو ملغى أو منتهي الصلاحية): {0}',
    signInFailed: 'تعذّر التحقق من المفتاح: {0}',
    noRole: 'هذا المفتاح أو الرمز لا يمنح أي دور في هذه المدينة.', signedInAs: '{0} ({1})',
    sessionEnded: 'أُلغي مفتاحك أو انتهت صلاحيته: سجّل الدخول من جديد.',
    notPublic: 'بيانات هذه المدينة ليست مفتوحة للعموم: سجّل الدخول بمفتاح API أو رمز وصول.',
    forbidden: 'دورك لا يسمح بذلك: {0}',
    noBaseline: 'لا توجد محاكاة مرجعية بعد: شغّل سيناريو.', preset_drought20: 'جفاف: خفض الطلب 20٪', preset_drought40: 'جفاف: خفض الطلب 40٪', preset_leakage: 'التسربات عند الضغط الحالي',
    skipToMap: 'انتقل إلى الخريطة', search: 'بحث', searchPlaceholder: 'ابحث بالمعرّف أو الاسم أو النوع',
    searchResults: 'نتائج البحث', noResults: 'لا توجد نتائج', language: 'اللغة', controls: 'أدوات التحكم',
    details: 'التفاصيل', layers: 'الطبقات', view3d: 'عرض ثلاثي الأبعاد', kpis: 'مؤشرات الماء',
    scenarios: 'سيناريوهات الماء', alerts: 'التنبيهات', mapLabel: 'خريطة المدينة', inspector: 'الكيان',
    chart: 'السجل', pickEntity: 'اختر عنصرًا على الخريطة أو ابحث عنه.',
    pickAttribute: 'اختر خاصية من الكيان لعرض منحناها.',
    time: 'الزمن', timeWindow: 'النافذة الزمنية', timeSlider: 'لحظة حالة التوأم', now: 'الآن',
    h6: '6 ساعات', h24: '24 ساعة', d7: '7 أيام', d30: '30 يومًا',
    liveOn: 'مباشر', liveOff: 'مباشر: متوقف', liveUnavailable: 'مباشر: غير متاح',
    notAvailable: 'غير متاح', loading: 'جارٍ التحميل…', failed: 'تعذّر التحميل: {0}',
    layer_buildings: 'المباني', layer_water: 'شبكة الماء', layer_sensors: 'أجهزة الاستشعار',
    layer_alerts: 'التنبيهات', layer_streetlights: 'الإنارة العمومية', layer_waste: 'حاويات النفايات',
    layer_parking: 'مواقف السيارات', layer_reports: 'بلاغات المواطنين',
    attribute: 'الخاصية', value: 'القيمة', kind: 'النوع', observedAt: 'وقت الرصد', chartIt: 'منحنى',
    chartOf: 'عرض منحنى {0}', open: 'فتح {0}', noAlerts: 'لا توجد تنبيهات مفتوحة.', acknowledge: 'إقرار',
    assign: 'إسناد', assignee: 'المكلَّف', status: 'الحالة', severity: 'الخطورة', show: 'عرض على الخريطة',
    saved: 'تم الحفظ', replaying: 'الحالة في {0}', replayUnavailable: 'السجل: غير متاح',
    measured: 'مقيس', simulated: 'محاكى', noHistory: 'لا يوجد سجل لهذه الخاصية.',
    waterBalance: 'الميزان المائي', nrw: 'المياه غير المفوترة', pressureAdequacy: 'كفاية الضغط',
    kpiUnavailable: 'مؤشرات الماء: غير متاحة', scenarioUnavailable: 'السيناريوهات: غير متاحة',
    scenario: 'السيناريو', run: 'تشغيل', baseline: 'المرجع', result: 'السيناريو', difference: 'الفرق',
    running: 'جارٍ الحساب…', kpi: 'المؤشر', close: 'إغلاق', entities: '{0} كيانات',
    candidates: 'الأنابيب المرشحة للفحص', layer_streets: 'الشوارع', hourlyMean: 'المتوسط الساعي',
  },
};

export const LANGUAGES = Object.keys(STRINGS);
let current = 'en';
const listeners = [];

/** The word for `key` in the current language, with {0}, {1}... filled in. */
export function t(key, ...args) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)] ?? ''));
}

export function language() {
  return current;
}

/** Run `fn` after every change of language (panels redraw their own text). */
export function onLanguage(fn) {
  listeners.push(fn);
}

/** Switch the page to `lang`: words, `lang` and `dir` on <html>. */
export function setLanguage(lang) {
  current = STRINGS[lang] ? lang : 'en';
  const root = document.documentElement;
  root.lang = current;
  root.dir = current === 'ar' ? 'rtl' : 'ltr';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-aria]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAria));
  }
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
  try {
    localStorage.setItem('cityverse.lang', current);
  } catch {
    // storage may be disabled; the choice then lasts for this page only
  }
  for (const fn of listeners) fn(current);
}

/** The language to start in: the saved choice, else the browser's, else English. */
export function initialLanguage() {
  let saved = null;
  try {
    saved = localStorage.getItem('cityverse.lang');
  } catch {
    saved = null;
  }
  if (saved && STRINGS[saved]) return saved;
  const browser = (navigator.language || 'en').slice(0, 2);
  return STRINGS[browser] ? browser : 'en';
}

/** A date in the current language's format. */
export function formatTime(ms) {
  const locale = current === 'ar' ? 'ar-MA' : current === 'fr' ? 'fr-FR' : 'en-GB';
  return new Date(ms).toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' });
}
